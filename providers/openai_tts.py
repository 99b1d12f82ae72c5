"""TTS `openai`: OpenAI's speech endpoint through the official client, streamed as raw PCM
(24 kHz, 16-bit mono: `response_format="pcm"`). Streams speak sentence by sentence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.configs import OpenAITTSConfig
from providers.errors import ProviderError
from providers.openai_client import make_client, provider_error
from providers.tts import TTS, AudioFrame, TTSCapabilities

OPENAI_PCM_RATE = 24000
CHUNK_BYTES = 4800  # 100 ms


class OpenAITTS(TTS):
    kind = "openai"
    capabilities = TTSCapabilities(streaming=False)

    def __init__(self, config: OpenAITTSConfig, *, client: Any) -> None:
        super().__init__(sample_rate=OPENAI_PCM_RATE, policy=config.policy())
        self.config = config
        self._client = client

    @classmethod
    def from_config(cls, config: OpenAITTSConfig, *, secrets: Mapping[str, str]) -> OpenAITTS:
        return cls(config, client=make_client(base_url=config.base_url,
                                              api_key_secret=config.api_key_secret,
                                              secrets=secrets, timeout_s=config.timeout_s))

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                    model=self.config.model, voice=self.config.voice, input=text,
                    response_format="pcm") as response:
                carry = b""
                async for chunk in response.iter_bytes(CHUNK_BYTES):
                    chunk = carry + chunk
                    cut = len(chunk) - len(chunk) % 2  # whole samples only
                    carry = chunk[cut:]
                    if cut:
                        yield AudioFrame(pcm16=chunk[:cut], sample_rate=OPENAI_PCM_RATE)
        except ProviderError:
            raise
        except Exception as err:  # noqa: BLE001 - typed; the client holds the key
            raise provider_error(err, provider=self.kind) from None

    async def aclose(self) -> None:
        await self._client.close()
