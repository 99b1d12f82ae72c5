"""The streaming STT interface: 16-bit mono PCM in, interim and final transcripts out.

Life of a stream (the livekit-agents shape):

    async with stt.stream(sample_rate=16000) as stream:
        stream.push_frame(pcm16)        # any number of 10-40 ms frames
        await stream.flush()            # end of an utterance: its `final` event follows
        stream.end_input()              # no more audio; iteration ends after the last final
        async for ev in stream: ...     # SpeechEvent(type='interim'|'final', text, ...)

A provider fills in `_recognize_impl` (one-shot) and, if it streams natively
(`capabilities.streaming`), returns its own `SpeechStream` subclass from `_stream_impl`.
Non-streaming providers (Whisper, OpenAI) get the one adapter, `BufferedSpeechStream`, which
decodes buffered audio on `flush`; at every `pause()` the turn detector signals (the caller
went quiet), so that when the turn ends there with nothing new, that decode is the final and
was started before the end of turn was decided; and, if `interim_every_s` is set, also while
the caller is still speaking.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from providers.policy import CallPolicy, call_with_retries
from providers.stream_base import END_OF_STREAM, ProviderStream

log = logging.getLogger("aico.providers.stt")

BYTES_PER_SAMPLE = 2


@dataclass(frozen=True)
class SpeechEvent:
    type: Literal["interim", "final"]
    text: str
    start_s: float | None = None
    end_s: float | None = None
    language: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None
    audio_s: float = 0.0


@dataclass(frozen=True)
class STTCapabilities:
    streaming: bool = False
    interim_results: bool = False
    sample_rates: tuple[int, ...] = (16000,)


@dataclass
class STTUsageTotals:
    requests: int = 0
    audio_s: float = 0.0
    retries: int = 0


class STT(ABC):
    kind: ClassVar[str] = ""
    capabilities: ClassVar[STTCapabilities] = STTCapabilities()

    def __init__(self, *, policy: CallPolicy | None = None, language: str | None = "en",
                 interim_every_s: float | None = None) -> None:
        self.policy = policy or CallPolicy(timeout_s=30.0)
        self.language = language
        self.interim_every_s = interim_every_s
        self.usage = STTUsageTotals()

    async def recognize(self, pcm16: bytes, *, sample_rate: int,
                        language: str | None = None) -> Transcript:
        """Transcribe one utterance of 16-bit mono PCM."""
        audio_s = len(pcm16) / (BYTES_PER_SAMPLE * sample_rate)
        self.usage.requests += 1
        self.usage.audio_s += audio_s
        return await call_with_retries(
            lambda: self._recognize_impl(pcm16, sample_rate=sample_rate,
                                         language=language or self.language),
            policy=self.policy, provider=self.kind, what="recognize",
            on_retry=self._count_retry)

    async def warm(self) -> None:
        """Exercise the model once before a call needs it (a process warms its providers)."""
        await self.recognize(b"\0\0" * 8000, sample_rate=16000)

    def _count_retry(self) -> None:
        self.usage.retries += 1

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> SpeechStream:
        return self._stream_impl(sample_rate=sample_rate, language=language or self.language)

    def _stream_impl(self, *, sample_rate: int, language: str | None) -> SpeechStream:
        return BufferedSpeechStream(self, sample_rate=sample_rate, language=language,
                                    interim_every_s=self.interim_every_s)

    @abstractmethod
    async def _recognize_impl(self, pcm16: bytes, *, sample_rate: int,
                              language: str | None) -> Transcript:
        """Transcribe; raise ProviderError subclasses on failure."""

    async def aclose(self) -> None:
        """Release connections; the base holds none."""


class _Flush:
    def __init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()


_END = END_OF_STREAM


class SpeechStream(ProviderStream[SpeechEvent]):
    """Input queue of frames and flush marks, output queue of events, one task between."""

    def __init__(self, stt: STT, *, sample_rate: int, language: str | None) -> None:
        self._stt = stt
        self.sample_rate = sample_rate
        self.language = language
        self._marks: list[_Flush] = []
        super().__init__(provider=stt.kind, role="stt")

    def push_frame(self, pcm16: bytes) -> None:
        """Queue 16-bit little-endian mono PCM at the stream's sample rate."""
        if self._input_ended:
            raise RuntimeError("push_frame after end_input")
        if len(pcm16) % 2:
            raise ValueError("a PCM16 frame holds whole 2-byte samples")
        if pcm16:
            self._input.put_nowait(pcm16)

    def pause(self) -> asyncio.Future[str] | None:
        """Hint: the caller paused here. Streaming services ignore it (None); the buffered
        adapter decodes what it has, to be reused as the final if no more audio comes before
        it, and returns a future of that decode's text (a speculative reply may start on it)."""
        return None

    async def flush(self) -> None:
        """Mark the end of an utterance. Buffered streams return once its final is queued;
        streaming services once the mark is sent (their final follows, if there were words)."""
        mark = _Flush()
        self._marks = [m for m in self._marks if not m.done.done()] + [mark]
        self._input.put_nowait(mark)
        await asyncio.shield(mark.done)

    def _on_finished(self) -> None:
        # Release anyone waiting on a flush the stream will never finish (it failed or
        # ended); the failure itself reaches them through iteration.
        for mark in self._marks:
            if not mark.done.done():
                mark.done.set_result(None)

    @abstractmethod
    async def _run(self, frames: asyncio.Queue, emit: Callable[[SpeechEvent], None]) -> None:
        """Read frames (bytes), `_Flush` marks (set `.done` once the final is emitted) and
        the end mark from `frames`; call `emit(SpeechEvent)`. Return at the end mark."""


class _Pause:
    """A pause mark on a buffered stream's input queue; `text` gets the pause decode's text."""

    def __init__(self) -> None:
        self.text: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def resolve(self, decode: asyncio.Task[Transcript]) -> None:
        def done(t: asyncio.Task[Transcript]) -> None:
            if self.text.done():
                return
            if t.cancelled() or t.exception() is not None:
                self.text.cancel()  # the final decode reports a real failure
            else:
                self.text.set_result(t.result().text)

        decode.add_done_callback(done)


class BufferedSpeechStream(SpeechStream):
    """Streams over a one-shot `recognize`: final on flush (the pause decode, when the
    utterance ended at the pause), interim while speaking and when a pause decode is
    overtaken by more speech."""

    def __init__(self, stt: STT, *, sample_rate: int, language: str | None,
                 interim_every_s: float | None = None) -> None:
        self._interim_every_s = interim_every_s
        self.pause_decodes_reused = 0  # finals that were a pause decode (nothing to wait for)
        super().__init__(stt, sample_rate=sample_rate, language=language)

    def pause(self) -> asyncio.Future[str] | None:
        if self._input_ended:
            return None
        mark = _Pause()
        self._input.put_nowait(mark)
        return mark.text

    def _decode(self, pcm16: bytes) -> asyncio.Task[Transcript]:
        return asyncio.create_task(self._stt.recognize(pcm16, sample_rate=self.sample_rate,
                                                       language=self.language))

    async def _run(self, frames: asyncio.Queue, emit: Callable[[SpeechEvent], None]) -> None:
        buf = bytearray()
        offset_s = 0.0  # where the current utterance started in the stream
        interim_at = 0  # buffer length at the last interim decode
        interim: asyncio.Task[Transcript] | None = None
        paused: tuple[int, asyncio.Task[Transcript]] | None = None  # decode of buf[:n]
        utterance = 0
        step = int((self._interim_every_s or 0) * self.sample_rate * BYTES_PER_SAMPLE)

        def as_interim(task: asyncio.Task[Transcript], gen: int, off: float) -> None:
            def report(t: asyncio.Task[Transcript]) -> None:
                self._emit_interim(t, off, emit, current=lambda: gen == utterance)

            if task.done():
                report(task)  # now, before a final of this utterance can be emitted
            else:
                task.add_done_callback(report)

        try:
            while True:
                item = await frames.get()
                if isinstance(item, bytes):
                    buf.extend(item)
                    if paused is not None:
                        # The caller went on: the pause decode is only an interim now.
                        as_interim(paused[1], utterance, offset_s)
                        paused = None
                    # One interim decode at a time: on a busy box they must not queue up.
                    if step and len(buf) - interim_at >= step and \
                            (interim is None or interim.done()):
                        interim_at = len(buf)
                        interim = self._decode(bytes(buf))
                        as_interim(interim, utterance, offset_s)
                    continue
                if isinstance(item, _Pause):
                    if buf and paused is None:
                        paused = (len(buf), self._decode(bytes(buf)))
                    if paused is not None:
                        item.resolve(paused[1])
                    else:
                        item.text.cancel()
                    continue
                utterance += 1  # interims of this utterance that finish late are dropped
                if interim is not None:
                    interim.cancel()
                    interim = None
                if buf:
                    duration = len(buf) / (BYTES_PER_SAMPLE * self.sample_rate)
                    if paused is not None and paused[0] == len(buf):
                        self.pause_decodes_reused += 1
                        result = await paused[1]
                    else:
                        result = await self._decode(bytes(buf))
                    emit(SpeechEvent("final", result.text, start_s=offset_s,
                                     end_s=offset_s + duration, language=result.language))
                    offset_s += duration
                    buf.clear()
                    interim_at = 0
                paused = None
                if isinstance(item, _Flush):
                    item.done.set_result(None)
                else:
                    return
        finally:
            for task in (interim, paused[1] if paused else None):
                if task is not None and not task.done():
                    task.cancel()

    @staticmethod
    def _emit_interim(task: asyncio.Task[Transcript], offset_s: float,
                      emit: Callable[[SpeechEvent], None], *,
                      current: Callable[[], bool]) -> None:
        if task.cancelled() or not current():
            return
        if task.exception() is not None:
            # An interim is best effort: the final decode will report a real failure.
            log.warning("interim decode failed: %s", type(task.exception()).__name__)
            return
        text = task.result().text
        if text:
            emit(SpeechEvent("interim", text, start_s=offset_s))
