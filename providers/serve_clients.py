"""Providers that call a self-hosted model's Ray Serve deployment through its handle.

They subclass the same bases as the in-process providers, so the caller's object still owns
timeouts, retries and usage; the replica only runs the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from providers.configs import ProviderConfig
from providers.embeddings import Embeddings
from providers.errors import ProviderError, ProviderUnavailable
from providers.llm import ChatLLM, ChatMessage, LLMChunk
from providers.stt import STT, Transcript
from providers.tts import TTS, AudioFrame


def _typed(err: Exception, provider: str) -> ProviderError:
    """A replica's ProviderError comes back wrapped in RayTaskError: unwrap it; anything
    else (a dead replica, back-pressure) is a retryable unavailability."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, ProviderError):
        return cause
    if isinstance(err, ProviderError) and cause is None:
        return err
    return ProviderUnavailable(f"{provider} deployment failed: {type(err).__name__}",
                               provider=provider)


class ServeSTT(STT):
    def __init__(self, cls: type[STT], config: Any, handle: Any) -> None:
        super().__init__(policy=config.policy(), language=getattr(config, "language", None),
                         interim_every_s=getattr(config, "interim_every_s", None))
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def _recognize_impl(self, pcm16: bytes, *, sample_rate: int,
                              language: str | None) -> Transcript:
        try:
            return await self._handle.recognize.remote(pcm16, sample_rate, language)
        except Exception as err:  # noqa: BLE001 - mapped to a typed error
            raise _typed(err, self.kind) from None


class ServeTTS(TTS):
    def __init__(self, cls: type[TTS], config: Any, handle: Any, *, sample_rate: int) -> None:
        super().__init__(sample_rate=sample_rate, policy=config.policy())
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def _synthesize_impl(self, text: str) -> AsyncIterator[AudioFrame]:
        try:
            async for frame in self._handle.options(stream=True).synthesize.remote(text):
                yield frame
        except Exception as err:  # noqa: BLE001 - mapped to a typed error
            raise _typed(err, self.kind) from None


class ServeChatLLM(ChatLLM):
    def __init__(self, cls: type[ChatLLM], config: Any, handle: Any) -> None:
        super().__init__(policy=config.policy())
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def _chat_impl(self, messages: list[ChatMessage], *, tools: list[dict] | None,
                         response_format: dict | None, temperature: float | None,
                         max_tokens: int | None) -> AsyncIterator[LLMChunk]:
        # The session's config (temperature, max_tokens) applies, not the replica's.
        temperature = getattr(self.config, "temperature", None) if temperature is None \
            else temperature
        max_tokens = max_tokens or getattr(self.config, "max_tokens", None)
        try:
            async for chunk in self._handle.options(stream=True).chat.remote(
                    [m.model_dump(exclude_none=True) for m in messages], tools,
                    response_format, temperature, max_tokens):
                yield chunk
        except Exception as err:  # noqa: BLE001 - mapped to a typed error
            raise _typed(err, self.kind) from None


class ServeEmbeddings(Embeddings):
    def __init__(self, cls: type[Embeddings], config: Any, handle: Any, *,
                 dimensions: int) -> None:
        super().__init__(dimensions=dimensions, policy=config.policy())
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def _embed_impl(self, texts: list[str]) -> list[list[float]]:
        try:
            return await self._handle.embed.remote(texts)
        except Exception as err:  # noqa: BLE001 - mapped to a typed error
            raise _typed(err, self.kind) from None


async def serve_client(capability: str, cls: type[Any], config: ProviderConfig, handle: Any) -> Any:
    if capability == "stt":
        if cls.capabilities.streaming:  # a recognizer per stream in the replica (Vosk)
            from providers.serve_speech_stream import ServeStreamingSTT

            return ServeStreamingSTT(cls, config, handle)
        return ServeSTT(cls, config, handle)
    if capability == "tts":
        return ServeTTS(cls, config, handle, sample_rate=await handle.sample_rate.remote())
    if capability == "llm":
        return ServeChatLLM(cls, config, handle)
    if capability == "embeddings":
        return ServeEmbeddings(cls, config, handle,
                               dimensions=await handle.dimensions.remote())
    raise ValueError(f"unknown capability {capability}")
