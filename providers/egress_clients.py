"""HTTP clients for cloud providers that connect only where the egress guard allows.

The session service opens a provider whose profile is not `internal` under
`egress_guarded(guard)` (an `aico.egress.EgressGuard`); a provider captures `current_guard()`
when it is built and makes its clients with it:

    client = httpx_client(guard, timeout=30)      # httpx (the openai SDK's `http_client=`)
    session = aiohttp_session(guard)              # aiohttp (the livekit plugins' WebSockets)

A guarded client resolves a host once through the guard, refuses any address that is not global
(unless the organization allow-listed it) and connects to the address it checked; with no guard
they are the libraries' plain clients (self-hosted servers an admin marked internal).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_egress_guard: ContextVar[Any] = ContextVar("aico_provider_egress_guard", default=None)


@contextlib.contextmanager
def egress_guarded(guard: Any) -> Iterator[None]:
    """Providers built inside connect only where `guard` allows (None: unguarded)."""
    token = _egress_guard.set(guard)
    try:
        yield
    finally:
        _egress_guard.reset(token)


def current_guard() -> Any:
    return _egress_guard.get()


def httpx_client(guard: Any, *, timeout: float) -> Any:
    import httpx

    if guard is not None:
        return guard.client(timeout=timeout)
    return httpx.AsyncClient(timeout=timeout)


def aiohttp_session(guard: Any) -> Any:
    import aiohttp

    if guard is None:
        return aiohttp.ClientSession()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_guarded_resolver(guard)))


def _guarded_resolver(guard: Any) -> Any:
    """aiohttp's resolver, answered by the guard: one checked lookup per connection. (aiohttp
    skips the resolver for literal addresses; the guard checked those when the provider was
    opened.)"""
    from aiohttp.abc import AbstractResolver, ResolveResult

    class GuardedResolver(AbstractResolver):
        async def resolve(self, host: str, port: int = 0,
                          family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
            addresses = await guard.pinned_addresses(host, port)
            return [ResolveResult(hostname=host, host=str(a), port=port,
                                  family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                                  proto=0, flags=socket.AI_NUMERICHOST) for a in addresses]

        async def close(self) -> None:
            return None

    return GuardedResolver()
