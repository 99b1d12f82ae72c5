"""The text-to-speech deployment: one Piper voice (or other self-hosted TTS) per replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from providers.runtime import load_provider_sync
from providers.tts import AudioFrame


@serve.deployment(name="tts", max_ongoing_requests=8)
class TTSDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("tts", config)
        self._provider.warm_up()  # the first call allocates: pay it before traffic arrives

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        """Streamed: call with `handle.options(stream=True)`."""
        async for frame in self._provider._synthesize_impl(text):
            yield frame

    def sample_rate(self) -> int:
        return self._provider.sample_rate

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        if self._provider.sample_rate <= 0:
            raise RuntimeError("tts voice not loaded")
