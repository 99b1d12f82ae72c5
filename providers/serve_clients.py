"""Providers that call a self-hosted model's Ray Serve deployment through its handle.

They subclass the same bases as the in-process providers, so the caller's object still owns
timeouts, retries and usage; the replica only runs the model.

A replica that dies with a request in flight (its actor killed, its node lost, the stream from
the handle dropped) costs no turn: the request is sent once more at once, and Serve routes it to
another replica (its router drops a replica whose actor died). What "once more" means depends
on what the caller has already received:

* STT `recognize`, embeddings: idempotent, asked again.
* TTS `synthesize`: spoken again from the start, and the audio already delivered is skipped,
  so a partly played sentence carries on where it stopped.
* LLM `chat`: asked again only if no token was delivered yet; otherwise the reply ends with what
  was delivered and a last chunk whose `finish_reason` is `interrupted` (a reply that was half
  spoken cannot be redone, and a new sample would not continue it).

A second loss, or any other failure, is a typed `ProviderError` for the base class's policy.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aico.metrics import record_provider_error
from providers.configs import ProviderConfig
from providers.embeddings import Embeddings
from providers.errors import ProviderError, ProviderUnavailable
from providers.llm import FINISH_INTERRUPTED, ChatLLM, ChatMessage, LLMChunk
from providers.stt import STT, Transcript
from providers.tts import TTS, AudioFrame

log = logging.getLogger("aico.providers.serve_clients")

_T = TypeVar("_T")

# Requests sent again at once after their replica died (each on another replica).
REPLICA_RETRIES = 1
# The output rate of each served TTS model, by its deployment and model key.
_tts_sample_rates: dict[tuple[Any, ...], int] = {}


async def warm_route(handle: Any) -> None:
    """A Serve client's `warm`: one request through `handle` that costs its replica no model
    work (its `model_key`), so a new process's first request finds Serve's routing to the
    deployment set up. The replica warmed its model itself when it started; a decode here
    would spend the CPU of the calls that are live while a pool refills (Whisper on half a
    second of silence: ≈300 ms of CPU, once for each new voice actor)."""
    await handle.model_key.remote()


def replica_lost(err: BaseException) -> bool:
    """Whether `err` says the replica (its actor, worker or node) went away mid-request, as
    opposed to the model failing: only then is the request worth sending to another replica."""
    try:
        from ray import exceptions as ray_errors
        from ray.serve.exceptions import ReplicaUnavailableError
    except ImportError:
        return False
    lost = (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
            ReplicaUnavailableError)
    return isinstance(err, lost) or isinstance(getattr(err, "cause", None), lost)


def _retrying(err: Exception, provider: str, operation: str, attempt: int) -> bool:
    if attempt >= REPLICA_RETRIES or not replica_lost(err):
        return False
    log.warning("%s %s: replica lost mid-request (%s), sending it to another replica",
                provider, operation, type(err).__name__)
    record_provider_error(provider, operation, "replica_lost")
    return True


async def _asked(request: Callable[[], Awaitable[_T]], provider: str, operation: str) -> _T:
    """An idempotent request to a replica, sent again once if its replica went away."""
    attempt = 0
    while True:
        try:
            return await request()
        except Exception as err:  # noqa: BLE001 - mapped to a typed error
            if not _retrying(err, provider, operation, attempt):
                raise _typed(err, provider) from None
        attempt += 1


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
        return await _asked(lambda: self._handle.recognize.remote(pcm16, sample_rate, language),
                            self.kind, "recognize")

    async def warm(self) -> None:
        await warm_route(self._handle)


class ServeTTS(TTS):
    def __init__(self, cls: type[TTS], config: Any, handle: Any, *, sample_rate: int) -> None:
        super().__init__(sample_rate=sample_rate, policy=config.policy())
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def warm(self) -> None:
        await warm_route(self._handle)

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        delivered = 0  # bytes of audio already yielded: a resumed synthesis skips them
        attempt = 0
        due = time.monotonic() + slack_s
        while True:
            skip = delivered
            slack_s = max(0.0, due - time.monotonic())
            try:
                async for frame in self._handle.options(stream=True).synthesize.remote(
                        text, slack_s):
                    if skip >= len(frame.pcm16):
                        skip -= len(frame.pcm16)
                        continue
                    if skip:
                        frame = AudioFrame(pcm16=frame.pcm16[skip:],
                                           sample_rate=frame.sample_rate,
                                           num_channels=frame.num_channels)
                        skip = 0
                    delivered += len(frame.pcm16)
                    yield frame
                return
            except Exception as err:  # noqa: BLE001 - mapped to a typed error
                if not _retrying(err, self.kind, "synthesize", attempt):
                    raise _typed(err, self.kind) from None
            attempt += 1

    async def cached_greeting(self, text: str) -> bytes | None:
        try:
            return await self._handle.greeting.remote(text)
        except Exception:  # noqa: BLE001 - an older or busy replica: synthesize instead
            return None

    def keep_greeting(self, text: str, pcm16: bytes) -> None:
        with contextlib.suppress(Exception):  # the cache is an optimisation
            self._handle.keep_greeting.remote(text, pcm16)  # fire and forget


class ServeChatLLM(ChatLLM):
    def __init__(self, cls: type[ChatLLM], config: Any, handle: Any) -> None:
        super().__init__(policy=config.policy())
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def warm(self) -> None:
        await warm_route(self._handle)

    async def _chat_impl(self, messages: list[ChatMessage], *, tools: list[dict] | None,
                         response_format: dict | None, temperature: float | None,
                         max_tokens: int | None, spoken: bool = False,
                         ) -> AsyncIterator[LLMChunk]:
        # The session's config (temperature, max_tokens) applies, not the replica's.
        temperature = getattr(self.config, "temperature", None) if temperature is None \
            else temperature
        max_tokens = max_tokens or getattr(self.config, "max_tokens", None)
        wire = [m.model_dump(exclude_none=True) for m in messages]
        delivered = False  # a token or a tool call reached the caller
        attempt = 0
        while True:
            try:
                async for chunk in self._handle.options(stream=True).chat.remote(
                        wire, tools, response_format, temperature, max_tokens, spoken):
                    delivered = delivered or bool(chunk.text or chunk.tool_calls)
                    yield chunk
                return
            except Exception as err:  # noqa: BLE001 - mapped to a typed error
                if delivered and replica_lost(err):
                    log.warning("%s chat: replica lost after tokens were delivered (%s); the "
                                "reply ends with them, interrupted", self.kind,
                                type(err).__name__)
                    record_provider_error(self.kind, "chat", "replica_lost")
                    yield LLMChunk(finish_reason=FINISH_INTERRUPTED)
                    return
                if delivered or not _retrying(err, self.kind, "chat", attempt):
                    raise _typed(err, self.kind) from None
            attempt += 1


class ServeEmbeddings(Embeddings):
    def __init__(self, cls: type[Embeddings], config: Any, handle: Any, *,
                 dimensions: int) -> None:
        super().__init__(dimensions=dimensions, policy=config.policy())
        self.kind = cls.kind  # type: ignore[misc]  # the kind of the provider it fronts
        self.capabilities = cls.capabilities  # type: ignore[misc]  # likewise
        self.config = config
        self._handle = handle

    async def _embed_impl(self, texts: list[str]) -> list[list[float]]:
        return await _asked(lambda: self._handle.embed.remote(texts), self.kind, "embed")


async def serve_client(capability: str, cls: type[Any], config: ProviderConfig, handle: Any) -> Any:
    if capability == "stt":
        if cls.capabilities.streaming:  # a recognizer per stream in the replica (Vosk)
            from providers.serve_speech_stream import ServeStreamingSTT

            return ServeStreamingSTT(cls, config, handle)
        return ServeSTT(cls, config, handle)
    if capability == "tts":
        # Asked once per served voice: a round trip to a busy replica on every call's connect.
        # By deployment too: another app (a test's stand-in) may serve the same voice config.
        key = (getattr(handle, "app_name", None), getattr(handle, "deployment_name", None),
               *config.model_key())
        if key not in _tts_sample_rates:
            _tts_sample_rates[key] = await handle.sample_rate.remote()
        return ServeTTS(cls, config, handle, sample_rate=_tts_sample_rates[key])
    if capability == "llm":
        return ServeChatLLM(cls, config, handle)
    if capability == "embeddings":
        return ServeEmbeddings(cls, config, handle,
                               dimensions=await handle.dimensions.remote())
    raise ValueError(f"unknown capability {capability}")
