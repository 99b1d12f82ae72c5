"""STT `openai`: OpenAI's transcription endpoint through the official client (one-shot per
utterance; the base class's buffered stream gives it the streaming interface)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.configs import OpenAISTTConfig
from providers.deepgram_stt import wav_bytes
from providers.errors import ProviderError
from providers.openai_client import make_client, provider_error
from providers.stt import STT, STTCapabilities, Transcript


class OpenAISTT(STT):
    kind = "openai"
    capabilities = STTCapabilities(streaming=False, interim_results=False,
                                   sample_rates=(8000, 16000, 24000, 48000))

    def __init__(self, config: OpenAISTTConfig, *, client: Any) -> None:
        super().__init__(policy=config.policy(), language=config.language)
        self.config = config
        self._client = client

    @classmethod
    def from_config(cls, config: OpenAISTTConfig, *, secrets: Mapping[str, str]) -> OpenAISTT:
        return cls(config, client=make_client(base_url=config.base_url,
                                              api_key_secret=config.api_key_secret,
                                              secrets=secrets, timeout_s=config.timeout_s))

    async def _recognize_impl(self, pcm16: bytes, *, sample_rate: int,
                              language: str | None) -> Transcript:
        options: dict[str, Any] = {"model": self.config.model,
                                   "file": ("utterance.wav", wav_bytes(pcm16, sample_rate))}
        if language:
            options["language"] = language
        try:
            result = await self._client.audio.transcriptions.create(**options)
        except ProviderError:
            raise
        except Exception as err:  # noqa: BLE001 - typed; the client holds the key
            raise provider_error(err, provider=self.kind) from None
        return Transcript(text=result.text.strip(), language=language,
                          audio_s=len(pcm16) / (2 * sample_rate))

    async def aclose(self) -> None:
        await self._client.close()
