"""The agent's voice: text in (whole utterances or LLM deltas), paced PCM frames out.

Text is cut into sentences; each sentence goes to the TTS as soon as it is complete, and the
next is synthesized while the current one plays. The opening of an LLM reply does not wait for
its sentence to end: its first clause (a comma, semicolon, colon or dash after a few words,
else the words before a word that starts a new phrase, else `clause_max_words` words) is
spoken while the LLM writes the rest. Frames leave in real time with a small lead (`lead_s`),
so a barge-in silences the caller's speaker within that lead plus one frame: the client drops
what it buffered on `interrupted`.

Every sentence remembers how much of its audio has been played, so `interrupt()` can say what
the caller actually heard. The greeting (the flow's `say` texts before the agent first falls
quiet) is the same on every call of a flow version: its audio is kept in a bounded per-process
LRU (`greeting_cache`), keyed by the TTS configuration and the text, so a later call plays it
without synthesis. Behind it, a TTS that fronts a Serve deployment asks the deployment's cache
(`TTS.cached_greeting`), shared by every call actor and filled when a flow is published, so a
call on a fresh actor plays the greeting without synthesis too. `cache_greeting` fills the
per-process level ahead of the first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aico.voice_messages import AgentSpeechEnded, AgentSpeechStarted, CallError, Metrics, to_wire
from providers.tts import (
    CLAUSE_MAX_WORDS,
    CLAUSE_MIN_WORDS,
    TTS,
    opening_clause,
    split_sentences,
)

log = logging.getLogger("aico.actors.speech_out")

# 40 ms frames: half the messages of 20 ms ones through the actor, the replica and the proxy
# (each costs CPU in all three), for at most 20 ms more before a barge-in silences the agent.
FRAME_S = 0.04
# Audio that resumes later than this after the last frame played out counts as a gap.
GAP_MIN_S = 0.02
# After its opening a reply is spoken a sentence at a time (one piece, one intonation), unless
# the audio the caller has ahead would run out before a whole sentence could be written and
# synthesized: then it goes on with the next piece cut as the opening was (a clause, a phrase
# word, six words). With four or more callers on two cores the LLM writes slower, and the
# sentence after a short opening came late: dead air inside the reply
# (bench/results/voice_concurrency.md).
CLAUSE_CUT_AHEAD_S = 1.0
# Roughly how long a word takes to say (Piper's joe: 0.31-0.33 s, pauses included), for the
# audio of a piece not synthesized yet.
WORD_S = 0.3
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
_CLOSED = re.compile(r"[.,;:!?\u2026\-\u2013\u2014]$")
# A piece's audio starts where the voice does: what a TTS puts before it (Piper: 20-60 ms,
# now and then 300 ms) is cut to ONSET_KEEP_S, so the caller hears the reply that much sooner.
ONSET_LEVEL = 300  # |sample| above this is voice (≈ -41 dBFS)
ONSET_KEEP_S = 0.01


class GreetingCache:
    """A bounded LRU of synthesized audio, by total bytes, for this process.

    The key names everything that shapes the sound (TTS kind, its whole configuration: model,
    voice, speaker, speed; the output rate) and the text. `hits` counts the pieces played from
    memory, `misses` the ones that had to be synthesized."""

    def __init__(self, *, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: tuple[str, str]) -> bytes | None:
        pcm = self._items.get(key)
        if pcm is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return pcm

    def put(self, key: tuple[str, str], pcm: bytes) -> None:
        # One item may take at most an eighth: a long text must not flush every greeting.
        if key in self._items or not pcm or len(pcm) > self.max_bytes // 8:
            return
        self._items[key] = pcm
        self._bytes += len(pcm)
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


greeting_cache = GreetingCache()


def tts_cache_key(tts: TTS) -> str:
    """What identifies the sound a TTS makes: its kind, output rate and whole configuration
    (a voice or speaker that `model_key` leaves out still changes the audio)."""
    model_dump = getattr(getattr(tts, "config", None), "model_dump", None)
    dump = model_dump(mode="json") if callable(model_dump) else {}
    return json.dumps([tts.kind, tts.sample_rate, dump], sort_keys=True, default=str)


def say_pieces(text: str) -> list[str]:
    """How `SpeechOut.say` cuts a text into pieces it synthesizes one by one."""
    sentences, rest = split_sentences(text.strip() + " ")
    if rest.strip():
        sentences.append(rest.strip())
    return first_clause(sentences[0]) + sentences[1:] if sentences else []


async def cache_greeting(tts: TTS, text: str) -> int:
    """Synthesize a greeting into `greeting_cache` ahead of the first call (for a warm pool or
    a flow's publication). Returns how many pieces had to be synthesized."""
    made = 0
    namespace = tts_cache_key(tts)
    for piece in say_pieces(text):
        key = (namespace, piece)
        if key in greeting_cache:
            continue
        pcm = b"".join([frame.pcm16 async for frame in tts.synthesize(piece)])
        greeting_cache.put(key, pcm)
        made += 1
    return made


def spoken_form(piece: str) -> str:
    """What the TTS is given for a piece of a reply: an opening cut where the reply has no
    punctuation gets a comma, so the voice carries on (a comma's rise and short pause) instead
    of ending a statement on its last word. The transcript keeps the reply's own words."""
    piece = piece.strip()
    return piece if not piece or _CLOSED.search(piece) else piece + ","


def first_clause(sentence: str, *, min_words: int = 3, max_words: int = 12) -> list[str]:
    """A long first sentence split at its first comma, so its audio starts sooner."""
    words = sentence.split()
    if len(words) <= max_words:
        return [sentence]
    parts = _CLAUSE.split(sentence, maxsplit=1)
    if len(parts) == 2 and len(parts[0].split()) >= min_words:
        return parts
    return [sentence]


def from_onset(pcm16: bytes, sample_rate: int) -> bytes | None:
    """`pcm16` from ONSET_KEEP_S before its first voiced sample; None if it has none."""
    samples = np.frombuffer(pcm16, dtype=np.int16, count=len(pcm16) // 2).astype(np.int32)
    loud = np.flatnonzero(np.abs(samples) > ONSET_LEVEL)
    if not loud.size:
        return None
    start = max(0, int(loud[0]) - int(ONSET_KEEP_S * sample_rate))
    return pcm16[2 * start:]


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
    voiced: bool = False  # its audio so far reached the voice's onset
    spoken: str = ""  # what the TTS says, when not `text` itself (see `spoken_form`)

    @property
    def tts_text(self) -> str:
        return self.spoken or self.text


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
                 lead_s: float = 0.12, clause_min_words: int = CLAUSE_MIN_WORDS,
                 clause_max_words: int = CLAUSE_MAX_WORDS) -> None:
        self.tts = tts
        self.sample_rate = tts.sample_rate
        self._send_audio = send_audio
        self._send_event = send_event
        self._on_first_audio = on_first_audio
        self.lead_s = lead_s
        self.clause_min_words = clause_min_words
        self.clause_max_words = clause_max_words
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
        self._gap_s = 0.0  # silence inside the current speech: its next audio was not ready
        self._idle = asyncio.Event()
        self._idle.set()
        self._cache_ns = tts_cache_key(tts)
        # The flow's `say` texts until the agent first falls quiet are its greeting: cached.
        self._opening = True
        self._synth_task = asyncio.create_task(self._synthesize_loop(), name="tts")
        self._play_task = asyncio.create_task(self._playout_loop(), name="playout")

    # --- input -------------------------------------------------------------------------

    def say(self, text: str, *, interruptible: bool = True) -> None:
        for piece in say_pieces(text):
            self._enqueue(Sentence(piece, None, interruptible, cacheable=self._opening))

    def push_stream(self, stream_id: str, text: str, *, interruptible: bool = True) -> None:
        self._opening = False
        stream = self._stream(stream_id, interruptible)
        stream.pending += text
        if not stream.sentences:
            # The reply's opening goes to the TTS at its first clause, not its first full stop.
            clause = opening_clause(stream.pending, min_words=self.clause_min_words,
                                    max_words=self.clause_max_words)
            if clause is not None:
                head, stream.pending = clause
                self._add_to_stream(stream, head, spoken=spoken_form(head))
        sentences, stream.pending = split_sentences(stream.pending)
        for sentence in sentences:
            self._add_to_stream(stream, sentence)
        self._cut_if_running_short(stream)

    def _cut_if_running_short(self, stream: _Stream) -> None:
        """The stream's next piece, cut as its opening was, queued now if the opening is queued
        and the audio ahead of the caller is running short (CLAUSE_CUT_AHEAD_S)."""
        while stream.sentences and not stream.ended and stream.pending.strip() \
                and self._ahead_s() < CLAUSE_CUT_AHEAD_S:
            clause = opening_clause(stream.pending, min_words=self.clause_min_words,
                                    max_words=self.clause_max_words)
            if clause is None:
                return
            head, stream.pending = clause
            self._add_to_stream(stream, head, spoken=spoken_form(head))

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
        self._opening = False
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

    def _add_to_stream(self, stream: _Stream, text: str, *, spoken: str = "") -> None:
        sentence = Sentence(text, stream.stream_id, stream.interruptible, cacheable=False,
                            spoken=spoken)
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
                self._send_event(to_wire(CallError(code="tts_failed",
                                                   message=str(err)[:200])))
            sentence.synthesized = True
            self._synthesizing = None
            self._frames_ready.set()
            self._check_idle()

    async def _synthesize(self, sentence: Sentence) -> None:
        key = (self._cache_ns, sentence.text)
        cached = greeting_cache.get(key) if sentence.cacheable else None
        if cached is None and sentence.cacheable:
            # The second level: the TTS deployment's, shared by every call actor.
            cached = await self.tts.cached_greeting(sentence.text)
            if cached:
                greeting_cache.put(key, cached)
        if cached:
            self._first_audio(sentence)
            self._add_audio(sentence, cached)
            return
        chunks: list[bytes] = []
        async for frame in self.tts.synthesize(sentence.tts_text, slack_s=self._queued_s()):
            if not chunks:
                self._first_audio(sentence)
            chunks.append(frame.pcm16)
            self._add_audio(sentence, frame.pcm16)
        if sentence.cacheable and chunks:
            pcm = b"".join(chunks)
            greeting_cache.put(key, pcm)
            self.tts.keep_greeting(sentence.text, pcm)

    def _ahead_s(self) -> float:
        """How long the caller will hear audio already made or being made: `_queued_s`, and
        the pieces not synthesized yet at WORD_S a word."""
        making = [self._synthesizing] if self._synthesizing is not None else []
        return self._queued_s() + sum(
            max(0.0, len(s.tts_text.split()) * WORD_S - s.audio_s) for s in (*making,
                                                                           *self._todo))

    def _queued_s(self) -> float:
        """How long the caller still hears audio already made: a sentence synthesized now is
        not needed before then (0 when the caller waits for it)."""
        unsent = sum(len(chunk) for _, chunk in self._frames) / (2 * self.sample_rate)
        return max(0.0, self._play_clock - time.monotonic()) + unsent

    def _first_audio(self, sentence: Sentence) -> None:
        if self._on_first_audio is not None:
            self._on_first_audio(sentence, time.monotonic() - sentence.queued_at)

    def _add_audio(self, sentence: Sentence, pcm: bytes) -> None:
        if not sentence.voiced:
            pcm = self._from_onset(sentence, pcm)
        step = self._frame_bytes
        for i in range(0, len(pcm), step):
            chunk = pcm[i:i + step]
            self._frames.append((sentence, chunk))
            sentence.audio_s += len(chunk) / (2 * self.sample_rate)
        self._frames_ready.set()

    def _from_onset(self, sentence: Sentence, pcm: bytes) -> bytes:
        """Nothing while the piece's audio is all silence (a streaming TTS's first chunks may
        be), then from its onset on."""
        voiced = from_onset(pcm, self.sample_rate)
        sentence.voiced = voiced is not None
        return voiced or b""

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
            if self._speaking and now - self._play_clock > GAP_MIN_S:
                self._gap_s += now - self._play_clock
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
            if not self._todo and self._synthesizing is None:
                for stream in list(self._streams.values()):
                    self._cut_if_running_short(stream)

    def _set_speaking(self, speaking: bool) -> None:
        if speaking == self._speaking:
            return
        self._speaking = speaking
        if speaking:
            self._gap_s = 0.0
            self._send_event(to_wire(AgentSpeechStarted()))
        else:
            self._opening = False
            self._send_event(to_wire(AgentSpeechEnded()))
            # Dead air the caller heard inside this speech (TTS or LLM late), for operators.
            self._send_event(to_wire(Metrics(speech_gap_ms=round(self._gap_s * 1000))))

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
