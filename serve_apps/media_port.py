"""The media port: each API replica also answers on a port of its own, so that a call's
WebSocket reaches the replica directly instead of through the Serve proxy.

Through the proxy every caller frame (50 a second per call) is a Ray call from the proxy
process to the replica (Serve's ASGI receive proxy), and every agent frame one back: with eight
callers sending silence that relay alone kept the proxy and the API replica at 0.6 of the
machine's two cores. On the media port a frame is a socket read in the replica, which writes it
to the call's media link (actors/media_link.py).

The port serves the same app (every route answers there; the app's lifespan runs once, in
the replica). Voice URLs name it (`serve_apps.routes.voice`): `AICO_VOICE_MEDIA_URL` when set
(a load balancer in front of a fixed `AICO_VOICE_MEDIA_PORT`, shared by a node's replicas
through SO_REUSEPORT); else, when no `AICO_PUBLIC_URL` says the API sits behind something else,
`ws://AICO_HOST:<the replica's port>`; else the API's own URL, through the proxy, as before.

    port = await MediaPort.start(app, settings)   # in the replica's lifespan
    port.port                                     # where it listens
    await port.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from aico.settings import Settings

log = logging.getLogger("aico.media_port")

BACKLOG = 1024
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class _Server(uvicorn.Server):
    """uvicorn inside the replica: the replica's process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class MediaPort:
    def __init__(self, server: _Server, task: asyncio.Task[None], sock: socket.socket) -> None:
        self._server, self._task, self._sock = server, task, sock
        self.port: int = sock.getsockname()[1]

    @classmethod
    async def start(cls, app: Any, settings: Settings) -> MediaPort:
        sock = _listen(settings.host, settings.voice.media_port)
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False,
            ws_max_size=4 * settings.limits.voice_max_audio_frame_bytes, proxy_headers=False,
            server_header=False)
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="media-port")
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # raises what stopped it
                raise RuntimeError("the media port's server stopped before it started")
            await asyncio.sleep(0.01)
        port = cls(server, task, sock)
        log.info("API replica answers calls on the media port %s:%d", settings.host, port.port)
        return port

    async def stop(self) -> None:
        self._server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._task, 10)
        self._sock.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if port:
            # A node's replicas share a fixed port; the kernel spreads connections over them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host or "0.0.0.0", port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def media_ws_base(settings: Settings, media_port: int | None, request_host: str | None) -> str | None:
    """The ws(s):// base of voice URLs on the media port, or None: through the API's URL."""
    voice = settings.voice
    if voice.media_url:
        return voice.media_url.rstrip("/")
    if media_port is None or settings.public_url:
        return None
    host = settings.host if settings.host not in WILDCARD_HOSTS else (request_host or "127.0.0.1")
    if _is_ipv6(host):
        host = f"[{host}]"
    return f"ws://{host}:{media_port}"
