"""The streaming TTS interface: text chunks in, 16-bit mono PCM frames out.

    async with tts.stream() as stream:
        stream.push_text("Hello there. How")   # LLM deltas, any size
        stream.push_text(" are you?")
        stream.flush()                          # speak what is buffered now
        stream.end_input()
        async for frame in stream: ...          # AudioFrame(pcm16, sample_rate)

The default stream cuts text into sentences and synthesizes each one as soon as it is
complete, so the first audio comes out while the LLM is still writing. A provider fills in
`_synthesize_impl`; one with a native text-streaming protocol (ElevenLabs' WebSocket) returns
its own `SynthesizeStream` from `_stream_impl`.

`synthesize(text, slack_s=...)` says how long the caller still has audio to hear before this
text's: 0 when someone is waiting for it now (a reply's opening, a greeting), the playing
audio's length for a reply's next sentence. A TTS that serves many calls on one model may
synthesize the texts with the least slack first (Piper does); a remote one ignores it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar

from aico.metrics import record_provider_call, record_provider_error
from providers.errors import ProviderError
from providers.llm import _aclose
from providers.policy import CallPolicy
from providers.stream_base import END_OF_STREAM, ProviderStream

log = logging.getLogger("aico.providers.tts")


@dataclass(frozen=True)
class AudioFrame:
    pcm16: bytes
    sample_rate: int
    num_channels: int = 1

    @property
    def duration_s(self) -> float:
        return len(self.pcm16) / (2 * self.num_channels * self.sample_rate)


@dataclass(frozen=True)
class TTSCapabilities:
    # True when the provider accepts text incrementally over one connection.
    streaming: bool = False


@dataclass
class TTSUsageTotals:
    requests: int = 0
    characters: int = 0
    audio_s: float = 0.0
    retries: int = 0


class TTS(ABC):
    kind: ClassVar[str] = ""
    capabilities: ClassVar[TTSCapabilities] = TTSCapabilities()

    def __init__(self, *, sample_rate: int, policy: CallPolicy | None = None) -> None:
        self.sample_rate = sample_rate
        self.policy = policy or CallPolicy(timeout_s=30.0)
        self.usage = TTSUsageTotals()

    async def warm(self) -> None:
        """Exercise the model once before a call needs it (a process warms its providers)."""
        async for _ in self.synthesize("Hello."):
            pass

    async def synthesize(self, text: str, *, slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        """Speak `text`, needed `slack_s` from now. Retries only before the first frame; waits
        between frames are bounded by the policy's timeout."""
        text = text.strip()
        if not text:
            return
        self.usage.requests += 1
        self.usage.characters += len(text)
        attempt, started = 0, time.monotonic()
        while True:
            frames = self._synthesize_impl(
                text, slack_s=max(0.0, slack_s - (time.monotonic() - started)))
            try:
                first = await self._next(frames)
                # Time to the first chunk, retries included: the latency a caller waits.
                record_provider_call(self.kind, "synthesize_first_audio", time.monotonic() - started)
                break
            except ProviderError as err:
                record_provider_error(self.kind, "synthesize_first_audio", err.code)
                await _aclose(frames)
                if not err.retryable or attempt >= self.policy.max_retries:
                    raise
                log.warning("%s synthesize failed before first audio (%s), retry %d/%d",
                            self.kind, err.code, attempt + 1, self.policy.max_retries)
                self.usage.retries += 1
                await asyncio.sleep(self.policy.delay(attempt))
                attempt += 1
        try:
            frame = first
            while frame is not None:
                self.usage.audio_s += frame.duration_s
                yield frame
                frame = await self._next(frames)
        finally:
            await _aclose(frames)

    async def _next(self, frames: AsyncIterator[AudioFrame]) -> AudioFrame | None:
        from providers.errors import ProviderTimeout

        try:  # asyncio.timeout keeps a cancellation that comes with a frame (ChatLLM._next)
            async with asyncio.timeout(self.policy.timeout_s):
                return await anext(frames)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise ProviderTimeout(f"{self.kind} sent no audio for {self.policy.timeout_s:g}s",
                                  provider=self.kind) from None

    async def cached_greeting(self, text: str) -> bytes | None:
        """The audio of a greeting piece from a cache shared by every call (a Serve TTS
        deployment's), or None: then it is synthesized. Never raises."""
        return None

    def keep_greeting(self, text: str, pcm16: bytes) -> None:
        """Hand a synthesized greeting piece to that shared cache (without waiting)."""

    def stream(self) -> SynthesizeStream:
        return self._stream_impl()

    def _stream_impl(self) -> SynthesizeStream:
        return SentenceSynthesizeStream(self)

    @abstractmethod
    def _synthesize_impl(self, text: str, *, slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        """An async generator of frames at `self.sample_rate`; raise ProviderError on failure.
        `slack_s`: how soon the audio is needed (a scheduling hint; may be ignored)."""

    async def aclose(self) -> None:
        """Release connections; the base holds none."""


# Japanese and Chinese end a sentence with 。！？ and no space after it.
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+|(?<=[。！？])[」』）]*\s*|\n+")
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "prof.", "e.g.", "i.e.", "etc.",
                            "vs.", "no.", "jr.", "sr."})
_FLUSH = object()
_END = END_OF_STREAM


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences in `text`, and the unfinished rest."""
    sentences, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        sentence = text[start:m.end()].strip()
        words = sentence.split()
        if words and words[-1].lower() in _ABBREVIATIONS:
            continue  # "Dr. Smith" is one sentence
        if sentence:
            sentences.append(sentence)
        start = m.end()
    return sentences, text[start:]


# A streamed reply's opening, the piece a voice call speaks first (actors/speech_out.py) and
# the part a local LLM writes before anything else (providers/llamacpp_llm.py): one rule for both.
# Where an opening clause may end: after , ; : (then a space), or at a free-standing dash.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|\s+[-\u2013\u2014]+\s+")
CLAUSE_MIN_WORDS = 3
# With no break at all, the opening is its first six words: SmolLM2 often opens with a long
# noun phrase ("The maker of the Samsung Galaxy S21 ..."), and every word more is LLM text to
# wait for and synthesis time. One caller, 16 calls a run, three alternating pairs: v2v p50
# 777 / 855 / 774 ms at eight words, 744 / 758 / 746 at six (bench/results/voice_side_by_side.md).
CLAUSE_MAX_WORDS = 6
# Words a new phrase starts with: with no comma yet, a reply's opening may end before one of
# these once CLAUSE_MIN_WORDS words precede it ("Our bakery opens | at seven tomorrow"), so its
# first audio is made from ~3-5 words instead of waiting for 6 (less LLM text to wait for, and
# synthesis time grows with the text). Not "to" or "of": they bind to the words around them.
PHRASE_STARTS = frozenset({
    "at", "on", "in", "from", "for", "with", "by", "about", "until", "after", "before", "since",
    "during", "through", "between", "and", "but", "or", "so", "because", "if", "when", "while",
    "which", "who", "where", "unless", "although"})


def opening_clause(text: str, *, min_words: int = CLAUSE_MIN_WORDS,
                   max_words: int = CLAUSE_MAX_WORDS) -> tuple[str, str] | None:
    """The first clause of an LLM reply that is still being written, and the rest; None to
    keep waiting for more text.

    A clause ends at a comma, semicolon, colon or dash inside the first sentence after at least
    `min_words` words. With no such boundary and no finished sentence, it ends before a complete
    word of `PHRASE_STARTS` that follows at least `min_words` words, else after `max_words`
    complete words. A short first sentence goes whole (None here: the sentence path)."""
    sentences, _ = split_sentences(text)
    first_end = len(text)
    if sentences:
        first_end = text.find(sentences[0]) + len(sentences[0])
    for m in _CLAUSE_END.finditer(text):
        if m.start() >= first_end:
            break
        head = text[:m.start()].strip()
        if len(head.split()) >= min_words:
            return head, text[m.end():]
    if sentences:
        return None
    words = text.split()
    complete = words if text[-1:].isspace() else words[:-1]
    for i in range(min_words, min(len(complete), max_words)):
        if complete[i].lower() in PHRASE_STARTS:
            return _cut_after(text, complete[:i])
    if len(complete) < max_words:
        return None
    return _cut_after(text, complete[:max_words])


def _cut_after(text: str, words: list[str]) -> tuple[str, str]:
    """`text` cut after its first `len(words)` words (which are `words`)."""
    cut = 0
    for word in words:
        cut = text.index(word, cut) + len(word)
    return text[:cut].strip(), text[cut:].lstrip()


def opening_ready(text: str) -> bool:
    """Whether a voice call would cut its first piece from a reply written up to `text`:
    an opening clause (`opening_clause`) or a finished first sentence."""
    return opening_clause(text) is not None or bool(split_sentences(text)[0])


class SynthesizeStream(ProviderStream[AudioFrame]):
    def __init__(self, tts: TTS) -> None:
        self._tts = tts
        self.sample_rate = tts.sample_rate
        super().__init__(provider=tts.kind, role="tts")

    def push_text(self, text: str) -> None:
        if self._input_ended:
            raise RuntimeError("push_text after end_input")
        if text:
            self._input.put_nowait(text)

    def flush(self) -> None:
        """Speak whatever text is buffered, sentence end or not."""
        self._input.put_nowait(_FLUSH)

    @abstractmethod
    async def _run(self, text: asyncio.Queue, emit: Callable[[AudioFrame], None]) -> None:
        """Read str chunks, the flush mark and the end mark; call emit(AudioFrame)."""


class SentenceSynthesizeStream(SynthesizeStream):
    """Synthesizes each sentence as soon as its end arrives, one after another, in order."""

    async def _run(self, text: asyncio.Queue, emit: Callable[[AudioFrame], None]) -> None:
        pending = ""
        while True:
            item = await text.get()
            if isinstance(item, str):
                pending += item
                sentences, pending = split_sentences(pending)
            else:
                sentences, pending = [pending.strip()] if pending.strip() else [], ""
            for sentence in sentences:
                async for frame in self._tts.synthesize(sentence):
                    emit(frame)
            if item is _END:
                return
