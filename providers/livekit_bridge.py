"""Run a livekit-agents plugin (Deepgram, ElevenLabs, ...) behind AICO's STT/TTS interfaces.

The plugins are the well-kept implementations of those wire protocols (reconnects on a
dropped socket, keep-alives, finalize/flush messages). We hand them our retry policy as
their `APIConnectOptions`, translate frames and events, and map their errors to ours.
Plugins need an aiohttp session; each provider object owns one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from providers.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)
from providers.policy import CallPolicy
from providers.stt import STT, SpeechEvent, SpeechStream, _Flush
from providers.tts import TTS, AudioFrame, SynthesizeStream


def connect_options(policy: CallPolicy) -> Any:
    from livekit.agents import APIConnectOptions

    return APIConnectOptions(max_retry=policy.max_retries, retry_interval=policy.backoff_s,
                             timeout=policy.timeout_s)


def provider_error(err: BaseException, *, provider: str) -> ProviderError:
    """Map livekit-agents API errors (their messages carry no request headers)."""
    from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError

    if isinstance(err, ProviderError):
        return err
    if isinstance(err, APIStatusError):
        return error_for_status(err.status_code, f"{provider}: HTTP {err.status_code}: "
                                f"{err.message}", provider=provider)
    if isinstance(err, APITimeoutError):
        return ProviderTimeout(f"{provider}: {err.message}", provider=provider)
    if isinstance(err, APIConnectionError):
        # The plugin already retried; its final error names the last cause.
        cause = err.__cause__
        if isinstance(cause, APIStatusError):
            return error_for_status(cause.status_code, f"{provider}: HTTP {cause.status_code}"
                                    f": {cause.message}", provider=provider)
        return ProviderUnavailable(f"{provider}: {err.message}", provider=provider)
    return ProviderError(f"{provider}: {type(err).__name__}", provider=provider)


def pcm_frame(pcm16: bytes, sample_rate: int) -> Any:
    from livekit import rtc

    return rtc.AudioFrame(data=pcm16, sample_rate=sample_rate, num_channels=1,
                          samples_per_channel=len(pcm16) // 2)


class LiveKitSpeechStream(SpeechStream):
    """Frames and flush marks into a plugin's RecognizeStream; its transcripts out.

    `flush()` returns once the plugin has the mark: a streaming service may send no final at
    all for an utterance without words, so waiting for one could wait forever. Finals still
    arrive in order, and `end_input()` waits for every outstanding one."""

    def __init__(self, stt: STT, plugin_stream_factory: Callable[[], Any], *,
                 sample_rate: int, language: str | None) -> None:
        self._factory = plugin_stream_factory
        super().__init__(stt, sample_rate=sample_rate, language=language)

    async def _run(self, frames: asyncio.Queue,
                   emit: Callable[[SpeechEvent], None]) -> None:
        from livekit.agents import stt as lk_stt

        lk = self._factory()
        self._stt.usage.requests += 1  # one stream, one streaming request (a connection)

        async def pump() -> None:
            while True:
                item = await frames.get()
                if isinstance(item, bytes):
                    self._stt.usage.audio_s += len(item) / (2 * self.sample_rate)
                    lk.push_frame(pcm_frame(item, self.sample_rate))
                elif isinstance(item, _Flush):
                    lk.flush()
                    item.done.set_result(None)
                else:
                    lk.end_input()
                    return

        pumping = asyncio.create_task(pump())
        try:
            async for ev in lk:
                if ev.type not in (lk_stt.SpeechEventType.INTERIM_TRANSCRIPT,
                                   lk_stt.SpeechEventType.FINAL_TRANSCRIPT):
                    continue
                alt = ev.alternatives[0] if ev.alternatives else None
                if alt is None:
                    continue
                final = ev.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT
                emit(SpeechEvent("final" if final else "interim", alt.text,
                                 start_s=alt.start_time or None, end_s=alt.end_time or None,
                                 language=str(alt.language) if alt.language else None,
                                 confidence=alt.confidence))
        except Exception as err:  # noqa: BLE001 - typed for the reader
            raise provider_error(err, provider=self._stt.kind) from None
        finally:
            pumping.cancel()
            await lk.aclose()


class LiveKitSynthesizeStream(SynthesizeStream):
    """Text into plugin SynthesizeStreams, one per flushed segment (livekit deprecates
    several segments in one plugin stream); their audio frames out, in order."""

    def __init__(self, tts: TTS, plugin_stream_factory: Callable[[], Any]) -> None:
        self._factory = plugin_stream_factory
        super().__init__(tts)

    async def _run(self, text: asyncio.Queue, emit: Callable[[AudioFrame], None]) -> None:
        from providers.tts import _END, _FLUSH

        segments: asyncio.Queue[Any] = asyncio.Queue()
        opened: list[Any] = []

        async def pump() -> None:
            current = None
            while True:
                item = await text.get()
                if isinstance(item, str):
                    if current is None:
                        current = self._factory()
                        opened.append(current)
                        segments.put_nowait(current)
                    self._tts.usage.characters += len(item)
                    current.push_text(item)
                elif item is _FLUSH or item is _END:
                    if current is not None:
                        current.end_input()
                        current = None
                    if item is _END:
                        segments.put_nowait(None)
                        return

        pumping = asyncio.create_task(pump())
        try:
            while (segment := await segments.get()) is not None:
                async for ev in segment:
                    frame = AudioFrame(pcm16=bytes(ev.frame.data),
                                       sample_rate=ev.frame.sample_rate,
                                       num_channels=ev.frame.num_channels)
                    self._tts.usage.audio_s += frame.duration_s
                    emit(frame)
        except Exception as err:  # noqa: BLE001 - typed for the reader
            raise provider_error(err, provider=self._tts.kind) from None
        finally:
            pumping.cancel()
            for segment in opened:
                await segment.aclose()


async def collect_synthesis(plugin_tts: Any, text: str, *, policy: CallPolicy
                            ) -> AsyncIterator[AudioFrame]:
    """One-shot synthesis through a plugin, without the plugin's own retries (ours run)."""
    from livekit.agents import APIConnectOptions

    opts = APIConnectOptions(max_retry=0, retry_interval=0, timeout=policy.timeout_s)
    try:
        async with plugin_tts.synthesize(text, conn_options=opts) as stream:
            async for ev in stream:
                yield AudioFrame(pcm16=bytes(ev.frame.data), sample_rate=ev.frame.sample_rate,
                                 num_channels=ev.frame.num_channels)
    except Exception as err:  # noqa: BLE001 - typed for the caller
        raise provider_error(err, provider=getattr(plugin_tts, "provider", "tts")) from None
