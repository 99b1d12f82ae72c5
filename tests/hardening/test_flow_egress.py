"""A hostile flow author aims the http node at addresses inside the network: the egress guard
refuses each one, and the loopback server that would have received the request stays empty.
An organization admin may allow-list private hosts; only what is listed gets through."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "flows"))

from flow_fakes import LoopbackHTTP, linear, publish, start_chat, texts

import aico.egress
from aico.egress import EgressGuard, EgressRefused


@pytest.fixture
async def server() -> AsyncIterator[LoopbackHTTP]:
    s = LoopbackHTTP()
    yield s
    s.close()


def port_of(s: LoopbackHTTP) -> int:
    return int(s.url.rsplit(":", 1)[1])


def http_flow(url: str) -> dict[str, Any]:
    return linear(
        "egress",
        {"id": "call", "type": "http", "method": "POST", "url": url, "body": {"card": "4111"},
         "into": "res", "timeout_s": 5},
        {"id": "show", "type": "say",
         "text": "{{ res.refused }}|{{ res.status }}|{{ res.error }}"})


async def run_http_flow(client, url: str) -> tuple[str, dict[str, Any]]:
    flow = await publish(client, http_flow(url))
    started = await start_chat(client, flow)
    (text,) = texts(started)
    r = await client.get(f"/v1/sessions/{started['id']}/events")
    assert r.status_code == 200, r.text
    body = r.json()
    events = body["items"] if isinstance(body, dict) else body
    (called,) = [e for e in events if e["type"] == "http.called"]
    return text, called["payload"]


async def allow(client, hosts: list[str]) -> None:
    r = await client.put("/v1/org/egress-allowlist", json={"hosts": hosts})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("target", "reason"), [
    ("http://100.100.100.200/latest", "100.100.100.200): a shared (CGNAT) address"),
    ("http://[64:ff9b::a9fe:a9fe]/latest", "it carries 169.254.169.254, a link-local address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254): a link-local address"),
    ("http://[::ffff:127.0.0.1]:{port}/steal", "it carries 127.0.0.1, a loopback address"),
    ("http://[2002:7f00:1::]:{port}/steal", "it carries 127.0.0.1, a loopback address"),
    ("http://127.0.0.1:{port}/steal", "127.0.0.1): a loopback address"),
])
async def test_http_node_refuses_non_global_targets_and_sends_nothing(api, server, target,
                                                                      reason):
    text, called = await run_http_flow(api, target.format(port=port_of(server)))
    refused, status, error = text.split("|", 2)
    assert (refused, status) == ("True", "0"), text
    assert reason in error and "refused to connect" in error, error
    assert called["status"] == 0 and reason in called["error"]
    assert server.requests == []


async def test_allowlisted_network_is_reached_but_its_mapped_form_is_not(api, server):
    await allow(api, ["127.0.0.0/8"])
    text, _ = await run_http_flow(api, f"{server.url}/orders")
    assert text == "|200|", text
    (req,) = server.requests
    assert req["path"] == "/orders" and req["body"] == '{"card":"4111"}'
    # The allow-list names IPv4 networks; an IPv6 wrapping of the same address is not listed.
    text, _ = await run_http_flow(api, f"http://[::ffff:127.0.0.1]:{port_of(server)}/again")
    assert text.startswith("True|0|"), text
    assert len(server.requests) == 1


async def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_dialled(
        api, server, monkeypatch):
    """DNS rebinding: the first answer is checked; a second lookup would have answered the
    metadata address. The guard never asks twice, and the request reaches the first address
    with the original Host header."""
    answers = [["127.0.0.1"], ["169.254.169.254"]]
    asked: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    monkeypatch.setattr(aico.egress, "resolve_addresses", rebinding_resolver)
    await allow(api, ["crm.partner.test"])
    text, _ = await run_http_flow(api, f"http://crm.partner.test:{port_of(server)}/lookup")
    assert text == "|200|", text
    assert asked == ["crm.partner.test"]
    (req,) = server.requests
    assert req["headers"]["Host"] == f"crm.partner.test:{port_of(server)}"


async def test_a_name_whose_first_answer_is_private_is_refused_without_a_second_lookup(
        api, server, monkeypatch):
    answers = [["10.0.0.7"], ["127.0.0.1"]]
    asked: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    monkeypatch.setattr(aico.egress, "resolve_addresses", rebinding_resolver)
    text, _ = await run_http_flow(api, f"http://rebind.test:{port_of(server)}/steal")
    assert text.startswith("True|0|refused to connect to rebind.test (10.0.0.7)"), text
    assert asked == ["rebind.test"]
    assert server.requests == []


async def test_a_redirect_to_a_private_address_is_not_followed(api, server, monkeypatch):
    inside = server
    outside = LoopbackHTTP(redirect_to=f"{inside.url}/steal")
    try:
        async def resolver(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        monkeypatch.setattr(aico.egress, "resolve_addresses", resolver)
        # Only the partner's name is allowed, not 127.0.0.1 itself.
        await allow(api, ["partner.test"])
        # The http node hands the 302 back to the flow and never follows it.
        text, _ = await run_http_flow(api, f"http://partner.test:{port_of(outside)}/start")
        assert text == "|302|", text
        assert len(outside.requests) == 1 and inside.requests == []
        # A guarded client that does follow redirects (provider SDKs) refuses the hop.
        guard = EgressGuard(["partner.test"])
        with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 \(127\.0\.0\.1\): a loopback"):
            await guard.request("GET", f"http://partner.test:{port_of(outside)}/start",
                                follow_redirects=True)
        assert len(outside.requests) == 2 and inside.requests == []
    finally:
        outside.close()


async def test_an_oversized_response_is_cut_off_while_reading(api):
    big = LoopbackHTTP(body_bytes=2 * 1024 * 1024)
    try:
        await allow(api, ["127.0.0.1"])
        text, called = await run_http_flow(api, f"{big.url}/export")
        assert text == "|200|response from 127.0.0.1 is larger than 262144 bytes", text
        assert called["error"] == "response from 127.0.0.1 is larger than 262144 bytes"
        assert len(big.requests) == 1
    finally:
        big.close()


async def test_the_allowlist_is_validated_admin_only_and_per_organization(make_org):
    admin = await make_org(role="admin")
    r = await admin.client.get("/v1/org/egress-allowlist")
    assert r.status_code == 200 and r.json() == {"hosts": []}
    r = await admin.client.put("/v1/org/egress-allowlist", json={
        "hosts": ["127.0.0.1", "10.1.0.0/16", "CRM.internal.", "crm.internal"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"hosts": ["127.0.0.1", "10.1.0.0/16", "crm.internal"]}

    for bad, field in ((["10.0.0.0/8", "http://x/"], "hosts[1]"),
                       (["not a host"], "hosts[0]"),
                       (["10.0.0.0/33"], "hosts[0]"),
                       ([f"h{i}.internal" for i in range(65)], "hosts"),
                       ("10.0.0.0/8", "hosts")):
        r = await admin.client.put("/v1/org/egress-allowlist", json={"hosts": bad})
        assert r.status_code == 422, r.text
        assert field in r.text, r.text
    r = await admin.client.get("/v1/org/egress-allowlist")
    assert r.json() == {"hosts": ["127.0.0.1", "10.1.0.0/16", "crm.internal"]}

    editor = await make_org(role="editor")
    r = await editor.client.put("/v1/org/egress-allowlist", json={"hosts": ["0.0.0.0/0"]})
    assert r.status_code == 403, r.text
    other = await make_org(role="admin")
    r = await other.client.get("/v1/org/egress-allowlist")
    assert r.json() == {"hosts": []}


@pytest.mark.parametrize(("address", "refused"), [
    ("8.8.8.8", None),
    ("2606:4700::1111", None),
    ("64:ff9b::808:808", None),            # NAT64 of a public address
    ("2002:808:808::1", None),             # 6to4 of a public address
    ("100.64.0.1", "shared (CGNAT)"),
    ("10.1.2.3", "private"),
    ("127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("224.0.0.251", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::1", "loopback"),
    ("fd00::1", "private"),
    ("fe80::1", "link-local"),
    ("::ffff:10.0.0.1", "it carries 10.0.0.1"),
    ("64:ff9b::7f00:1", "it carries 127.0.0.1"),
    ("2002:a9fe:a9fe::", "it carries 169.254.169.254"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "it carries 127.0.0.1"),  # Teredo, client 127.0.0.1
    ("::127.0.0.1", "it carries 127.0.0.1"),
])
def test_address_classification(address, refused):
    import ipaddress

    reason = aico.egress.refusal_reason(ipaddress.ip_address(address))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason, reason


def self_signed(name: str, directory: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_is_verified_for_the_name_while_the_checked_address_is_dialled(tmp_path):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    cert, key = self_signed("secure.partner.test", tmp_path)
    seen: list[tuple[str | None, str | None]] = []
    server_names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append((self.headers.get("Host"), self.path))
            self.send_response(204)
            self.end_headers()

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    client_ctx = ssl.create_default_context(cafile=str(cert))
    guard = EgressGuard(["secure.partner.test", "impostor.partner.test"], resolver=resolver)
    try:
        async with guard.client(verify=client_ctx) as client:
            r = await client.get(f"https://secure.partner.test:{port}/hello")
            assert r.status_code == 204
            # The certificate is for another name: verification is against the URL's name,
            # not the address that was dialled.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://impostor.partner.test:{port}/hello")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [(f"secure.partner.test:{port}", "/hello")]
    assert server_names[0] == "secure.partner.test"
    assert asked == ["secure.partner.test", "impostor.partner.test"]
