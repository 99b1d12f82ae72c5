"""Voice call fixtures: the API served by uvicorn on a loopback port (WebSockets need a real
server), the offline models loaded once for the whole run (the pipeline and the tests share
them through `providers.runtime`), a caller voice made with Piper, and a Whisper ear.

The voice tests pin where the models run (`AICO_MODELS=inprocess`, and the same in the
server's settings), so a call takes the same path whatever other test packages left running
(a `models` Serve app would otherwise be picked up by `auto`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from voice_api import MODELS_MODE, models_mode

from actors.audio import resample_pcm16
from actors.host import LocalVoiceHost
from aico.settings import ModelSettings, Settings


@pytest.fixture(autouse=True, scope="module")
def _pinned_models_mode() -> Iterator[None]:
    with models_mode(MODELS_MODE):
        yield


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

    with models_mode(MODELS_MODE):  # session fixtures are made before the module pin
        stt, tts = await warm_default_providers()
    return stt, tts


@pytest.fixture(scope="session")
def voice_settings(settings: Settings) -> Settings:
    """The test settings with the models' mode pinned (passed down, not read from the env)."""
    return settings.model_copy(update={"serving": ModelSettings(mode=MODELS_MODE)})


@pytest.fixture(scope="session")
async def voice_server(voice_settings, app_pool, voice_models) -> AsyncIterator[VoiceServer]:
    """The API as it serves calls: the application role's pool, under row-level security."""
    import uvicorn

    from serve_apps.api import create_app

    app = create_app(voice_settings, pool=app_pool,
                     voice_host=LocalVoiceHost(app_pool, voice_settings))
    # Port 0: the kernel picks a free port as the server binds it; read it back.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        assert not task.done(), "the voice test server did not start"
        assert time.monotonic() < deadline, "the voice test server did not start in 60 s"
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
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
