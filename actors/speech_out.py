"""The agent's voice: text in (whole utterances or LLM deltas), paced PCM frames out.

Text is cut into sentences; each sentence goes to the TTS as soon as it is complete (the first
one of a reply is also cut at a comma when that gives a short first clause), and the next is
synthesized while the current one plays. Frames leave in real time with a small lead
(`lead_s`), so a barge-in silences the caller's speaker within that lead plus one frame: the
client drops what it buffered on `interrupted`.

Every sentence remembers how much of its audio has been played, so `interrupt()` can say what
the caller actually heard. A small per-process cache keeps the audio of flow texts (greetings,
prompts), which are the same on every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.tts import TTS, split_sentences

log = logging.getLogger("aico.actors.speech_out")

FRAME_S = 0.02
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
_CACHE_MAX_BYTES = 16 * 1024 * 1024
_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_cache_bytes = 0


def _cache_get(key: tuple[str, str]) -> bytes | None:
    pcm = _cache.get(key)
    if pcm is not None:
        _cache.move_to_end(key)
    return pcm


def _cache_put(key: tuple[str, str], pcm: bytes) -> None:
    global _cache_bytes
    if key in _cache or len(pcm) > _CACHE_MAX_BYTES // 8:
        return
    _cache[key] = pcm
    _cache_bytes += len(pcm)
    while _cache_bytes > _CACHE_MAX_BYTES:
        _, old = _cache.popitem(last=False)
        _cache_bytes -= len(old)


def first_clause(sentence: str, *, min_words: int = 3, max_words: int = 12) -> list[str]:
    """A long first sentence split at its first comma, so its audio starts sooner."""
    words = sentence.split()
    if len(words) <= max_words:
        return [sentence]
    parts = _CLAUSE.split(sentence, maxsplit=1)
    if len(parts) == 2 and len(parts[0].split()) >= min_words:
        return parts
    return [sentence]


def heard_words(text: str, fraction: float) -> str:
    words = text.split()
    n = int(len(words) * max(0.0, min(1.0, fraction)) + 0.5)
    return " ".join(words[:n])


@dataclass(eq=False)
class Sentence:
    text: str
    stream_id: str | None
    interruptible: bool
    cacheable: bool
    queued_at: float = field(default_factory=time.monotonic)
    audio_s: float = 0.0
    sent_s: float = 0.0
    synthesized: bool = False


@dataclass
class _Stream:
    stream_id: str
    interruptible: bool
    pending: str = ""
    sentences: list[Sentence] = field(default_factory=list)
    ended: bool = False
    done: asyncio.Future[bool] | None = None


class SpeechOut:
    def __init__(self, tts: TTS, *, send_audio: Callable[[bytes], Any],
                 send_event: Callable[[dict[str, Any]], Any],
                 on_first_audio: Callable[[Sentence, float], Any] | None = None,
                 lead_s: float = 0.12) -> None:
        self.tts = tts
        self.sample_rate = tts.sample_rate
        self._send_audio = send_audio
        self._send_event = send_event
        self._on_first_audio = on_first_audio
        self.lead_s = lead_s
        self._frame_bytes = int(self.sample_rate * FRAME_S) * 2
        self._todo: deque[Sentence] = deque()
        self._todo_ready = asyncio.Event()
        self._frames: deque[tuple[Sentence, bytes]] = deque()
        self._frames_ready = asyncio.Event()
        self._streams: dict[str, _Stream] = {}
        self._burst: list[Sentence] = []  # every sentence since the agent last fell silent
        self._synthesizing: Sentence | None = None
        self._play_clock = 0.0  # wall time at which the last sent frame finishes playing
        self._speaking = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._cache_ns = f"{tts.kind}:{getattr(getattr(tts, 'config', None), 'model_key', lambda: '')()}"
        self._synth_task = asyncio.create_task(self._synthesize_loop(), name="tts")
        self._play_task = asyncio.create_task(self._playout_loop(), name="playout")

    # --- input -------------------------------------------------------------------------

    def say(self, text: str, *, interruptible: bool = True) -> None:
        sentences, rest = split_sentences(text.strip() + " ")
        if rest.strip():
            sentences.append(rest.strip())
        pieces = first_clause(sentences[0]) + sentences[1:] if sentences else []
        for piece in pieces:
            self._enqueue(Sentence(piece, None, interruptible, cacheable=True))

    def push_stream(self, stream_id: str, text: str, *, interruptible: bool = True) -> None:
        stream = self._stream(stream_id, interruptible)
        stream.pending += text
        sentences, stream.pending = split_sentences(stream.pending)
        for sentence in sentences:
            pieces = first_clause(sentence) if not stream.sentences else [sentence]
            for piece in pieces:
                self._add_to_stream(stream, piece)

    def end_stream(self, stream_id: str, *, interruptible: bool = True) -> None:
        stream = self._stream(stream_id, interruptible)
        if stream.pending.strip():
            self._add_to_stream(stream, stream.pending.strip())
        stream.pending = ""
        stream.ended = True
        self._check_streams()
        self._frames_ready.set()

    async def wait_stream(self, stream_id: str) -> bool:
        """True once every sentence of the stream has played, False if it was interrupted."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return True
        assert stream.done is not None
        return await asyncio.shield(stream.done)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    @property
    def speaking(self) -> bool:
        """Agent audio is playing (or about to) at the caller's end."""
        return not self._idle.is_set()

    @property
    def interruptible(self) -> bool:
        current = self._current_sentence()
        return current is None or current.interruptible

    # --- barge-in ----------------------------------------------------------------------

    def interrupt(self) -> dict[str | None, str]:
        """Stop at once. Returns what the caller heard, per LLM stream (None: flow texts)."""
        now = time.monotonic()
        unheard_s = max(0.0, self._play_clock - now)
        heard: dict[str | None, list[str]] = {s: [] for s in self._streams}
        # The lead sent but not yet played is subtracted from the newest sentences.
        for sentence in reversed([s for s in self._burst if s.sent_s > 0]):
            take = min(unheard_s, sentence.sent_s)
            sentence.sent_s -= take
            unheard_s -= take
        for sentence in self._burst:
            parts = heard.setdefault(sentence.stream_id, [])
            if sentence.audio_s > 0 and sentence.sent_s > 0:
                frac = sentence.sent_s / sentence.audio_s if sentence.synthesized else 0.0
                parts.append(sentence.text if frac >= 0.98 else heard_words(sentence.text, frac))
        self._burst.clear()
        self._todo.clear()
        self._frames.clear()
        if self._synthesizing is not None:
            self._synth_task.cancel()
            self._synth_task = asyncio.create_task(self._synthesize_loop(), name="tts")
            self._synthesizing = None
        for stream in self._streams.values():
            if stream.done is not None and not stream.done.done():
                stream.done.set_result(False)
        self._streams.clear()
        self._play_clock = now
        self._set_speaking(False)
        self._idle.set()
        return {k: " ".join(p for p in v if p).strip() for k, v in heard.items()}

    async def aclose(self) -> None:
        for task in (self._synth_task, self._play_task):
            task.cancel()
        for task in (self._synth_task, self._play_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stream in self._streams.values():
            if stream.done is not None and not stream.done.done():
                stream.done.set_result(False)

    # --- internals ---------------------------------------------------------------------

    def _stream(self, stream_id: str, interruptible: bool) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = _Stream(stream_id, interruptible)
            stream.done = asyncio.get_running_loop().create_future()
        return stream

    def _add_to_stream(self, stream: _Stream, text: str) -> None:
        sentence = Sentence(text, stream.stream_id, stream.interruptible, cacheable=False)
        stream.sentences.append(sentence)
        self._enqueue(sentence)

    def _enqueue(self, sentence: Sentence) -> None:
        self._burst.append(sentence)
        self._todo.append(sentence)
        self._todo_ready.set()
        self._idle.clear()

    def _current_sentence(self) -> Sentence | None:
        if self._frames:
            return self._frames[0][0]
        return self._synthesizing or (self._todo[0] if self._todo else None)

    async def _synthesize_loop(self) -> None:
        while True:
            while not self._todo:
                self._todo_ready.clear()
                await self._todo_ready.wait()
            sentence = self._todo.popleft()
            self._synthesizing = sentence
            try:
                await self._synthesize(sentence)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - a failed sentence must not end the call
                log.warning("TTS failed for %r: %s", sentence.text[:40], err)
                self._send_event({"type": "error", "code": "tts_failed",
                                  "message": str(err)[:200]})
            sentence.synthesized = True
            self._synthesizing = None
            self._frames_ready.set()
            self._check_idle()

    async def _synthesize(self, sentence: Sentence) -> None:
        key = (self._cache_ns, sentence.text)
        cached = _cache_get(key) if sentence.cacheable else None
        if cached is not None:
            self._first_audio(sentence)
            self._add_audio(sentence, cached)
            return
        chunks: list[bytes] = []
        async for frame in self.tts.synthesize(sentence.text):
            if not chunks:
                self._first_audio(sentence)
            chunks.append(frame.pcm16)
            self._add_audio(sentence, frame.pcm16)
        if sentence.cacheable and chunks:
            _cache_put(key, b"".join(chunks))

    def _first_audio(self, sentence: Sentence) -> None:
        if self._on_first_audio is not None:
            self._on_first_audio(sentence, time.monotonic() - sentence.queued_at)

    def _add_audio(self, sentence: Sentence, pcm: bytes) -> None:
        step = self._frame_bytes
        for i in range(0, len(pcm), step):
            chunk = pcm[i:i + step]
            self._frames.append((sentence, chunk))
            sentence.audio_s += len(chunk) / (2 * self.sample_rate)
        self._frames_ready.set()

    def _more_coming(self) -> bool:
        return bool(self._todo) or self._synthesizing is not None or any(
            not stream.ended for stream in self._streams.values())

    async def _playout_loop(self) -> None:
        while True:
            if not self._frames:
                self._frames_ready.clear()
                if self._speaking and not self._more_coming():
                    # Let the last frames play out before saying the agent stopped.
                    try:
                        await asyncio.wait_for(self._frames_ready.wait(),
                                               max(0.0, self._play_clock - time.monotonic()))
                    except TimeoutError:
                        if not self._frames and not self._more_coming():
                            self._set_speaking(False)
                            self._check_idle()
                    continue
                await self._frames_ready.wait()
                continue
            now = time.monotonic()
            self._play_clock = max(self._play_clock, now)
            ahead = self._play_clock - now
            if ahead > self.lead_s:
                await asyncio.sleep(ahead - self.lead_s)
                continue
            sentence, chunk = self._frames.popleft()
            if not self._speaking:
                self._set_speaking(True)
            duration = len(chunk) / (2 * self.sample_rate)
            self._send_audio(chunk)
            self._play_clock += duration
            sentence.sent_s += duration
            if not self._frames or self._frames[0][0] is not sentence:
                self._check_streams()

    def _set_speaking(self, speaking: bool) -> None:
        if speaking == self._speaking:
            return
        self._speaking = speaking
        if speaking:
            self._send_event({"type": "agent_speech_started"})
        else:
            self._send_event({"type": "agent_speech_ended"})

    def _check_streams(self) -> None:
        """Resolve streams whose every sentence has been sent and synthesized."""
        for stream_id, stream in list(self._streams.items()):
            if not stream.ended:
                continue
            pending = any(not s.synthesized or s.sent_s + 1e-6 < s.audio_s
                          for s in stream.sentences)
            if not pending and stream.done is not None and not stream.done.done():
                # Played out once the lead has drained; the caller heard it all.
                stream.done.set_result(True)
                del self._streams[stream_id]

    def _check_idle(self) -> None:
        if (not self._todo and not self._frames and self._synthesizing is None
                and not self._speaking):
            self._idle.set()
            if all(stream.ended for stream in self._streams.values()):
                self._burst.clear()
