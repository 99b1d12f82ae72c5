"""The speech-to-text deployment: one Whisper (or other self-hosted STT) per replica."""

from __future__ import annotations

from typing import Any

from ray import serve

from providers.runtime import load_provider_sync
from providers.stt import Transcript


@serve.deployment(name="stt", max_ongoing_requests=8)
class STTDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("stt", config)
        self._provider.warm_up()  # the first call allocates: pay it before traffic arrives

    async def recognize(self, pcm16: bytes, sample_rate: int,
                        language: str | None = None) -> Transcript:
        # The calling provider object owns retries and timeouts; a replica only decodes.
        return await self._provider._recognize_impl(pcm16, sample_rate=sample_rate,
                                                    language=language)

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        # Cheap on purpose: Serve calls it every few seconds, and a decode costs ~0.7 s of CPU.
        if self._provider.config is None:
            raise RuntimeError("stt model not loaded")
