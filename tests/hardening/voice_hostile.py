"""What the hostile voice tests share: a voice server (the API on uvicorn, port 0, the pipeline
in-process with the packaged models) whose `settings.limits` a test module chooses, flows, and
a raw WebSocket caller that records what the server sent and how it closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from aico.settings import LimitSettings, ModelSettings, Settings

MODELS_MODE = "inprocess"
GREETING = "Hello."


def limited_settings(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update={"serving": ModelSettings(mode=MODELS_MODE),
                                       "limits": LimitSettings(**limits)})


@dataclass
class VoiceServer:
    base_http: str
    base_ws: str
    app: Any

    def ws_url(self, voice: dict[str, Any]) -> str:
        return f"{self.base_ws}/v1/{voice['url'].split('/v1/', 1)[1]}"


@contextlib.asynccontextmanager
async def serve_voice(settings: Settings, *, pool: Any = None) -> AsyncIterator[VoiceServer]:
    """The API on uvicorn at a port the kernel picks (0), read back once it listens."""
    import uvicorn

    from actors.host import LocalVoiceHost
    from serve_apps.api import create_app

    app = create_app(settings, pool=pool)
    state = app.state.aico
    state.voice_host = LocalVoiceHost(pool or await state.pool(), settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                          lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield VoiceServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", app)
    finally:
        for name in ("voice_sweeper", "live_hub"):
            service = getattr(state, name, None)
            if service is not None:
                await service.aclose()
        server.should_exit = True
        await task
        if pool is None:
            await state.close()


def greeting_flow(name: str = "hostile") -> dict[str, Any]:
    """Greets, then takes any number of inputs (a digit is a turn) without speaking again."""
    return {
        "name": name,
        "variables": {"choice": {"type": "string", "default": ""},
                      "turns": {"type": "number", "default": 0},
                      "voice_no_input_s": {"type": "number", "default": 600}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "greet", "type": "say", "text": GREETING},
                  {"id": "listen", "type": "listen", "into": "choice"},
                  {"id": "count", "type": "set", "assign": {"turns": "turns + 1"}}],
        "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                  {"from": "listen", "to": "count"}, {"from": "count", "to": "listen"}],
    }


async def publish(api: Any, document: dict[str, Any]) -> str:
    r = await api.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 201, r.text
    flow_id = r.json()["id"]
    r = await api.post(f"/v1/flows/{flow_id}/publish")
    assert r.status_code == 201, r.text
    return flow_id


async def voice_session(api: Any, server: VoiceServer, flow_id: str) -> tuple[UUID, str]:
    r = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    body = r.json()
    return UUID(body["id"]), server.ws_url(body["voice"])


@dataclass
class RawCaller:
    """One WebSocket to the voice route: what came back, and the close code."""

    ws: ClientConnection
    events: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    def errors(self) -> list[str]:
        return [e.get("code") for e in self.events if e.get("type") == "error"]

    async def next_event(self, kind: str, *, timeout: float = 60.0) -> dict[str, Any]:
        """Read until an event of `kind` (recording all on the way)."""
        async with asyncio.timeout(timeout):
            for event in self.events:
                if event.get("type") == kind:
                    return event
            while True:
                message = await self.ws.recv()
                if isinstance(message, bytes):
                    self.audio_bytes += len(message)
                    continue
                event = json.loads(message)
                self.events.append(event)
                if event.get("type") == kind:
                    return event

    async def read_for(self, seconds: float) -> None:
        """Record whatever arrives during `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    message = await self.ws.recv()
                    if isinstance(message, bytes):
                        self.audio_bytes += len(message)
                    else:
                        self.events.append(json.loads(message))

    async def until_closed(self, *, timeout: float = 60.0) -> int | None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                async for message in self.ws:
                    if isinstance(message, bytes):
                        self.audio_bytes += len(message)
                    else:
                        self.events.append(json.loads(message))
        return self.ws.close_code


async def dial(url: str, *, sample_rate: int = 16000, start: bool = True) -> RawCaller:
    ws = await connect(url, max_size=None, ping_interval=None)
    if start:
        with contextlib.suppress(ConnectionClosed):  # a refusal may close it first
            await ws.send(json.dumps({"type": "start", "sample_rate": sample_rate}))
    return RawCaller(ws)


async def answered(caller: RawCaller) -> bool:
    """True once the call is `ready`; False when the server refused it (then closed)."""
    try:
        message = json.loads(await caller.ws.recv())
    except ConnectionClosed:
        return False
    caller.events.append(message)
    if message.get("type") == "ready":
        return True
    await caller.until_closed(timeout=10)
    return False


async def session_events(pool: Any, session_id: UUID) -> list[Any]:
    return await pool.fetch("SELECT type, direction, payload FROM session_events"
                            " WHERE session_id = $1 ORDER BY seq", session_id)


async def wait_for(check: Any, *, timeout: float, every: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy, or fail at the deadline."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(every)
