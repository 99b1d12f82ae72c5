"""What the call tests share, whichever way the caller comes in (the voice WebSocket at 16 kHz,
a phone line at 8 kHz): where the models run (pinned), the offline models warmed once, a caller
voice made with Piper at the caller's rate and a Whisper ear, and the API served by uvicorn on a
loopback socket (calls need a real WebSocket server).

Imported by name (`from voice_support import ...`): `tests/` is on the path, as the folder of
the root conftest (pytest's default import mode)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

# Where the call tests' models run (AICO_MODELS), pinned so a call takes the same path whatever
# other test packages left running (a `models` Serve app would otherwise be picked up by `auto`).
MODELS_MODE = "inprocess"


@contextlib.contextmanager
def models_mode(mode: str) -> Iterator[None]:
    """`AICO_MODELS` for this process while the block runs (settings re-read on both ends)."""
    from aico.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AICO_MODELS", mode)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


async def warm_call_models() -> tuple[Any, Any]:
    """The default STT and TTS, loaded in this process (the pipeline and the tests share them
    through `providers.runtime`)."""
    from actors.call_providers import warm_default_providers

    with models_mode(MODELS_MODE):  # session fixtures are made before a module's pin
        stt, tts = await warm_default_providers()
    return stt, tts


class Voices:
    """The caller's voice (Piper, resampled to the caller's rate: 16 kHz on the web, 8 kHz on a
    phone line) and an ear for the agent's (Whisper)."""

    def __init__(self, stt: Any, tts: Any, *, caller_rate: int) -> None:
        self.stt, self.tts = stt, tts
        self.caller_rate = caller_rate
        self._said: dict[str, bytes] = {}
        self._voice: Any = None

    async def caller_voice(self) -> Any:
        """The agent's TTS configuration, without Piper's random noise: a line sounds the same
        in every run, so what Whisper hears of it does not change from run to run."""
        if self._voice is None:
            from providers.runtime import open_tts

            config = self.tts.config.model_dump()
            if config.get("kind") == "piper":
                config.update(noise_scale=0.0, noise_w_scale=0.0)
            with models_mode(MODELS_MODE):
                self._voice = await open_tts(config, secrets={})
        return self._voice

    async def caller(self, text: str) -> bytes:
        from providers.pcm import resample_pcm16

        if text not in self._said:
            voice = await self.caller_voice()
            chunks = [f.pcm16 async for f in voice.synthesize(text)]
            self._said[text] = resample_pcm16(b"".join(chunks), voice.sample_rate,
                                              self.caller_rate)
        return self._said[text]

    async def hear(self, pcm16: bytes, sample_rate: int) -> str:
        if len(pcm16) < sample_rate // 5:
            return ""
        result = await self.stt.recognize(pcm16, sample_rate=sample_rate)
        return str(result.text).lower()


def loopback_socket() -> socket.socket:
    """A socket bound to 127.0.0.1 port 0 (the kernel picks a free port): bound before the app
    is built when the app must know its own URL (what a carrier signs and calls back)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def served(app: Any, *, sock: socket.socket | None = None,
                 name: str = "the test server") -> AsyncIterator[int]:
    """`app` on uvicorn at `sock` (a fresh loopback socket when None) until the block ends;
    yields the port, once the server listens."""
    import uvicorn

    sock = sock or loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 60
    while not server.started:
        assert not task.done(), f"{name} did not start"
        assert time.monotonic() < deadline, f"{name} did not start in 60 s"
        await asyncio.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
