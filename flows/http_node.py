"""The `http` node's request: SSRF guard, bounded response, JSON when the server sends JSON.

Private, loopback, link-local, multicast and reserved targets are refused unless the
organization's settings say `allow_private_http: true`. Every address the host name resolves
to is checked; the request then goes to the checked name (a DNS answer that changes between the
check and the connect is not defended against here: pin the address at the proxy if that
matters).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_RESPONSE_BYTES = 256 * 1024


class TargetRefused(Exception):
    pass


async def check_target(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"only http(s) URLs with a host are allowed, not {url[:100]!r}")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {parts.hostname!r}: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified):
            raise TargetRefused(
                f"{parts.hostname} resolves to {address}, a private/loopback/link-local address;"
                " the organization does not allow private http targets"
            )


async def http_request(
    *, method: str, url: str, headers: dict[str, str], body: Any, timeout_s: float,
    allow_private: bool,
) -> dict[str, Any]:
    """`{"status", "body"}` on a response (any status), `{"status": 0, "error"}` otherwise."""
    try:
        await check_target(url, allow_private=allow_private)
    except TargetRefused as exc:
        return {"status": 0, "error": str(exc), "refused": True}
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None and method != "GET":
        kwargs["json" if not isinstance(body, str) else "content"] = body
    try:
        async with (httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
                    client.stream(method, url, **kwargs) as response):
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    return {"status": response.status_code,
                            "error": f"response larger than {MAX_RESPONSE_BYTES} bytes"}
                chunks.append(chunk)
            raw = b"".join(chunks)
            content_type = response.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        return {"status": 0, "error": f"{type(exc).__name__}: {exc}"[:500]}
    text = raw.decode("utf-8", errors="replace")
    parsed: Any = text
    if "json" in content_type:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            pass
    return {"status": response.status_code, "body": parsed}
