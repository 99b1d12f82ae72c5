"""The one egress guard: every outbound request that a flow or an organization setting can aim
(the `http` node, provider base URLs, integrators' webhooks) goes through it.

What it does, per connection (not per URL, so redirects and keep-alive reuse are covered too):
- resolves the host name ONCE, and refuses the connection if ANY resolved address is not a
  global unicast address (`not is_global`, loopback, link-local, multicast, reserved,
  unspecified, 100.64.0.0/10 CGNAT), looking inside IPv4-mapped (`::ffff:a.b.c.d`), NAT64
  (`64:ff9b::/96`), 6to4 (`2002::/16`), Teredo (`2001::/32`) and IPv4-compatible (`::/96`)
  forms at the IPv4 address they carry;
- connects to the checked address itself (the name is never resolved again, so a DNS answer
  that changes between check and connect cannot redirect it), while the Host header, TLS SNI
  and certificate verification still use the name;
- an organization's allow-list (IP addresses, CIDR networks, exact host names) lets chosen
  private targets through; everything else stays refused;
- `EgressGuard.request` also bounds the response size (while reading) and the total time.

API (what callers use):

    guard = EgressGuard(allowlist=["10.1.0.0/16", "crm.internal"])   # entries as stored
    response = await guard.request("POST", url, headers=..., json=..., timeout_s=10,
                                   max_response_bytes=256 * 1024)  # -> EgressResponse
    # or, for a client library that takes an httpx client (the openai SDK's `http_client=`):
    client = guard.client(timeout=httpx.Timeout(30.0))   # an httpx.AsyncClient, guarded
    await guard.check_url(url)   # early, clear refusal for a configured URL (e.g. at save)

A refused target raises `EgressRefused` (HTTP 403, `error: egress_refused`, naming the host and
address) before a single byte is sent to it. `EgressTooLarge` / `EgressTimeout` report the
bounds. `normalize_allowlist(entries)` validates what an organization stores (422 naming the
entry). Nothing here imports anything of ours but `aico`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from aico.errors import AicoError, ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> addresses as strings; replaceable in tests to simulate a DNS answer.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_ALLOWLIST_ENTRIES = 64
MAX_REDIRECTS = 5
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class EgressRefused(AicoError):
    """The target is not a global address and the organization has not allow-listed it."""

    status, code = 403, "egress_refused"


class EgressTooLarge(AicoError):
    status, code = 502, "egress_response_too_large"


class EgressTimeout(AicoError):
    status, code = 504, "egress_timeout"


# --- addresses -------------------------------------------------------------------------------

def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries in the transition forms routers honour."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    # (:: and ::1 are the unspecified and loopback addresses, not IPv4-compatible forms.)
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public target, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped IPv6 address"
        for inner in _embedded_ipv4(address):
            reason = refusal_reason(inner)
            if reason is not None:
                return f"it carries {inner}, {reason}"
        if address in _IPV4_COMPATIBLE and int(address) > 1:
            return "an IPv4-compatible IPv6 address"
        if address.ipv4_mapped is not None or address in _NAT64:
            return None  # reaches exactly the (public) IPv4 address checked above
    for flag, reason in (("is_loopback", "a loopback address"),
                         ("is_link_local", "a link-local address"),
                         ("is_multicast", "a multicast address"),
                         ("is_unspecified", "the unspecified address"),
                         ("is_reserved", "a reserved address"),
                         ("is_private", "a private address")):
        if getattr(address, flag):
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if not address.is_global:
        return "not a global address"
    return None


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


async def resolve_addresses(host: str, port: int) -> list[str]:
    """The system resolver's answer for `host` (the only lookup the guard makes)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# --- allow-list ------------------------------------------------------------------------------

def _allowlist_entry(entry: Any) -> str:
    """One entry normalized, or ValueError saying what is wrong with it."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError("must be a non-empty string")
    text = entry.strip().lower()
    if len(text) > 253:
        raise ValueError("is longer than 253 characters")
    if "/" in text:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError("is not a valid CIDR network (e.g. 10.1.0.0/16)") from None
    address = _parse_ip(text)
    if address is not None:
        return str(address)
    name = text.rstrip(".")
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels) or name.replace(".", "").isdigit():
        raise ValueError("is neither an IP address, a CIDR network nor a host name")
    return name


def normalize_allowlist(entries: Any, *, field_name: str = "hosts") -> list[str]:
    """Validated, normalized, de-duplicated entries; `ValidationFailed` (422) naming the entry."""
    if not isinstance(entries, list):
        raise ValidationFailed(f"{field_name} must be a list of strings",
                               details=[{"field": field_name, "error": "not a list"}])
    if len(entries) > MAX_ALLOWLIST_ENTRIES:
        raise ValidationFailed(
            f"{field_name} holds {len(entries)} entries; at most {MAX_ALLOWLIST_ENTRIES}",
            details=[{"field": field_name, "error": "too many entries"}])
    normalized: list[str] = []
    for i, entry in enumerate(entries):
        try:
            value = _allowlist_entry(entry)
        except ValueError as exc:
            raise ValidationFailed(
                f"{field_name}[{i}] {str(entry)[:80]!r} {exc}",
                details=[{"field": f"{field_name}[{i}]", "error": str(exc)}]) from None
        if value not in normalized:
            normalized.append(value)
    return normalized


@dataclass(frozen=True)
class EgressAllowlist:
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> EgressAllowlist:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            value = _allowlist_entry(entry)
            if "/" in value or _parse_ip(value) is not None:
                networks.append(ipaddress.ip_network(value, strict=False))
            else:
                hosts.add(value)
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return _normal_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


# --- the guard -------------------------------------------------------------------------------

@dataclass(frozen=True)
class EgressResponse:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class EgressGuard:
    """Checks and pins every connection; see the module docstring for the API."""

    allowlist: EgressAllowlist | Sequence[str] = ()
    resolver: Resolver | None = None
    # Each (host, addresses) the guard resolved, in order: what was checked and pinned.
    resolved: list[tuple[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.allowlist, EgressAllowlist):
            self.allowlist = EgressAllowlist.parse(self.allowlist)

    async def pinned_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve `host` once and return its addresses, or raise `EgressRefused`."""
        allowlist = self.allowlist
        assert isinstance(allowlist, EgressAllowlist)
        literal = _parse_ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            resolve = self.resolver or resolve_addresses
            try:
                answer = await resolve(_normal_host(host), port)
            except (OSError, UnicodeError) as exc:
                raise EgressRefused(f"cannot resolve {host!r}: {exc}", host=host) from None
            self.resolved.append((host, list(answer)))
            addresses = [a for a in (_parse_ip(a) for a in answer) if a is not None]
            if not addresses:
                raise EgressRefused(f"{host!r} resolves to no address", host=host)
        if literal is None and allowlist.allows_host(host):
            return addresses
        for address in addresses:
            if allowlist.allows_address(address):
                continue
            reason = refusal_reason(address)
            if reason is not None:
                raise EgressRefused(
                    f"refused to connect to {host} ({address}): {reason}; an organization"
                    " admin may allow it in the egress allow-list",
                    host=host, address=str(address))
        return addresses

    async def check_url(self, url: str) -> None:
        """Raise `EgressRefused` unless `url` is http(s) with a host the guard would reach."""
        host, port = _url_target(url)
        await self.pinned_addresses(host, port)

    def transport(self, **options: Any) -> GuardedTransport:
        return GuardedTransport(self, **options)

    def client(self, *, timeout: httpx.Timeout | float = 30.0, follow_redirects: bool = False,
               verify: Any = True, **options: Any) -> httpx.AsyncClient:
        """An httpx client whose every connection (redirects included) passes the guard.
        Environment proxies are ignored: a proxy would connect on the guard's behalf."""
        return httpx.AsyncClient(
            transport=self.transport(verify=verify), timeout=timeout, trust_env=False,
            follow_redirects=follow_redirects, max_redirects=MAX_REDIRECTS, **options)

    async def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None,
        content: str | bytes | None = None, json: Any = None, timeout_s: float = 10.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, follow_redirects: bool = False,
    ) -> EgressResponse:
        """One bounded request: `timeout_s` covers everything (connect, send, whole body),
        the body is cut off while reading at `max_response_bytes` (`EgressTooLarge`)."""
        _url_target(url)
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if content is not None:
            kwargs["content"] = content
        elif json is not None:
            kwargs["json"] = json
        try:
            async with asyncio.timeout(timeout_s):
                async with self.client(timeout=timeout_s, follow_redirects=follow_redirects) \
                        as client, client.stream(method, url, **kwargs) as response:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                        if size > max_response_bytes:
                            raise EgressTooLarge(
                                f"response from {response.url.host} is larger than"
                                f" {max_response_bytes} bytes", status_code=response.status_code)
                        chunks.append(chunk)
                    return EgressResponse(status=response.status_code, headers=response.headers,
                                          body=b"".join(chunks), url=str(response.url))
        except TimeoutError:
            raise EgressTimeout(f"{method} {_redacted(url)} took longer than {timeout_s:g} s") \
                from None


def _url_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"only http(s) URLs with a host are allowed, not {url[:100]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EgressRefused(f"invalid port in {url[:100]!r}") from None
    return parts.hostname, port


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path[:60]}"


# --- httpx/httpcore plumbing -----------------------------------------------------------------

class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked."""

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self.guard.pinned_addresses(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not an egress target")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=5)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~25 ms; one verifying context serves every connection.
    return httpx.create_ssl_context(verify=True, trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` over a connection pool that dials through the guard (TLS is
    still negotiated for the URL's host name: httpcore passes it as `server_hostname`)."""

    def __init__(self, guard: EgressGuard, *, verify: Any = True,
                 limits: httpx.Limits = _LIMITS) -> None:
        # Deliberately not calling super().__init__: it would build an unguarded pool.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_default_ssl_context() if verify is True
            else httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(guard),
        )
