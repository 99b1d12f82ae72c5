"""A cloud provider's connections go through the egress guard unless its profile is internal:
an organization that allow-lists a private host reaches it (through the guard's pinned
connection), one that does not is refused before a byte is sent; names resolve once, through
the guard, for the WebSocket clients too."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from aico.egress import EgressGuard, EgressRefused
from flows.document import parse_flow_document
from flows.sessions import open_session_speech, resolve_session_providers
from providers.egress_clients import aiohttp_session
from tests.providers.fake_deepgram import FakeDeepgram
from tests.providers.fake_openai import FakeOpenAI

FLOW = {"name": "f", "nodes": [{"id": "start", "type": "start"}, {"id": "bye", "type": "end"}],
        "edges": [{"from": "start", "to": "bye"}]}


async def test_an_allow_listed_deepgram_profile_is_reached_through_the_guard(make_org, pool,
                                                                          settings):
    org = await make_org()
    assert (await org.client.put("/v1/secrets/DG", json={"value": "dg-key"})).status_code == 201
    async with FakeDeepgram(api_key="dg-key", transcripts=["through the guard"]) as deepgram:
        profile = {"name": "dg", "capability": "stt", "default": True,
                   "config": {"kind": "deepgram", "base_url": deepgram.url,
                              "api_key_secret": "DG"}}
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 403 and r.json()["error"] == "egress_refused"
        assert deepgram.attempts == 0 and deepgram.queries == []

        r = await org.client.put("/v1/org/egress-allowlist", json={"hosts": ["127.0.0.1"]})
        assert r.status_code == 200, r.text
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 200, r.text
        # What a voice session of a flow that names no profile pins (the org's default).
        resolved = await resolve_session_providers(
            pool, org_id=org.id, document=parse_flow_document(FLOW), channel="voice",
            settings=settings)
        assert resolved.profiles == {"stt": "dg"} and resolved.guarded == ("stt",)
        pinned = resolved.to_json()
        stt, _tts = await open_session_speech(pool, {"org_id": org.id, "providers": pinned},
                                              settings=settings)
        assert stt._guard is not None  # built under the guard
        result = await stt.recognize(b"\0\0" * 16000, sample_rate=16000)
        assert result.text == "through the guard"


async def test_the_websocket_clients_resolve_names_through_the_guard():
    seen: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    try:
        allowed = EgressGuard(allowlist=["127.0.0.1"], resolver=resolver)
        async with aiohttp_session(allowed) as session, \
                session.get(f"http://provider.test:{port}/") as response:
            assert await response.text() == "hi"
        assert lookups == ["provider.test"] and seen == [f"provider.test:{port}"]

        refusing = EgressGuard(resolver=resolver)
        async with aiohttp_session(refusing) as session:
            with pytest.raises((EgressRefused, aiohttp.ClientError)) as err:
                await session.get(f"http://provider.test:{port}/")
        assert "refused" in str(err.value).lower()
        assert seen == [f"provider.test:{port}"]  # nothing more arrived
    finally:
        await runner.cleanup()


async def test_an_allow_listed_openai_compatible_profile_answers_through_the_guard(make_org,
                                                                                  pool):
    org = await make_org()
    assert (await org.client.put("/v1/secrets/K", json={"value": "sk-k"})).status_code == 201
    assert (await org.client.put("/v1/org/egress-allowlist",
                                 json={"hosts": ["127.0.0.1"]})).status_code == 200
    async with FakeOpenAI(api_key="sk-k", reply="Guarded hello.") as server:
        profile = {"name": "main", "capability": "llm", "default": True,
                   "config": {"kind": "openai-compatible", "base_url": server.url,
                              "model": "m", "api_key_secret": "K"}}
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 200, r.text
        doc = {"name": "g", "nodes": [{"id": "start", "type": "start"},
                                      {"id": "reply", "type": "llm"},
                                      {"id": "hear", "type": "listen"}],
               "edges": [{"from": "start", "to": "reply"}, {"from": "reply", "to": "hear"}]}
        flow = (await org.client.post("/v1/flows", json={"name": "g", "document": doc})).json()
        assert (await org.client.post(f"/v1/flows/{flow['id']}/publish")).status_code == 201
        r = await org.client.post(f"/v1/flows/{flow['id']}/sessions", json={"channel": "chat"})
        assert r.status_code == 201, r.text
        assert [m["text"] for m in r.json()["messages"]] == ["Guarded hello."]
        assert [path for path, _ in server.requests] == ["/v1/chat/completions"]

        # The organization takes 127.0.0.1 off its allow-list: the next session is refused
        # before anything is stored or sent.
        assert (await org.client.put("/v1/org/egress-allowlist",
                                     json={"hosts": []})).status_code == 200
        r = await org.client.post(f"/v1/flows/{flow['id']}/sessions", json={"channel": "chat"})
        assert r.status_code == 403 and r.json()["error"] == "egress_refused"
        assert len(server.requests) == 1
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1
