"""Voice call fixtures: the API served by uvicorn on a loopback port (WebSockets need a real
server), the offline models loaded once for the whole run (the pipeline and the tests share
them through `providers.runtime`), a caller voice made with Piper, and a Whisper ear."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from actors.audio import resample_pcm16
from actors.host import LocalVoiceHost


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VoiceServer:
    base_ws: str
    app: Any

    def ws_url(self, voice: dict[str, Any]) -> str:
        path = voice["url"].split("/v1/", 1)[1]
        return f"{self.base_ws}/v1/{path}"


@pytest.fixture(scope="session")
async def voice_models() -> Any:
    from actors.call_providers import warm_default_providers

    stt, tts = await warm_default_providers()
    return stt, tts


@pytest.fixture(scope="session")
async def voice_server(settings, pool, voice_models) -> AsyncIterator[VoiceServer]:
    import uvicorn

    from serve_apps.api import create_app

    app = create_app(settings, pool=pool)
    app.state.aico.extras["voice_host"] = LocalVoiceHost(pool, settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield VoiceServer(base_ws=f"ws://127.0.0.1:{port}", app=app)
    server.should_exit = True
    await task


class Voices:
    """The caller's voice (Piper, 16 kHz) and an ear for the agent's (Whisper)."""

    def __init__(self, stt: Any, tts: Any) -> None:
        self.stt, self.tts = stt, tts
        self._said: dict[str, bytes] = {}

    async def caller(self, text: str) -> bytes:
        if text not in self._said:
            chunks = [f.pcm16 async for f in self.tts.synthesize(text)]
            self._said[text] = resample_pcm16(b"".join(chunks), self.tts.sample_rate, 16000)
        return self._said[text]

    async def hear(self, pcm16: bytes, sample_rate: int) -> str:
        if len(pcm16) < sample_rate // 5:
            return ""
        result = await self.stt.recognize(pcm16, sample_rate=sample_rate)
        return result.text.lower()


@pytest.fixture(scope="session")
def voices(voice_models) -> Voices:
    return Voices(*voice_models)
