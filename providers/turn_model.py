"""Semantic end of turn: is what the caller said so far a finished turn?

    model = EndOfTurnModel.load()                     # once per process (one ONNX session)
    p = await model.completeness(pcm16)               # 16 kHz mono PCM16 up to the pause
    p > COMPLETE_ABOVE                                # "I'd like to book a table." vs "my number is…"

The model is Pipecat's smart-turn v3.2 (BSD-2-Clause, 8.7 MB ONNX), a Whisper-tiny encoder with
a classifier head. It ships inside the `pipecat-ai` wheel, installed with `--no-deps` as a weight
package: we load the file with onnxruntime and never import pipecat (whose dependencies we do
not install). Its input is what Whisper's feature extractor makes of the LAST 8 s of the
utterance (zero-padded at the front when shorter), after a zero-mean unit-variance normalisation
of those 8 s: an (80 mel bands × 800 frames) log-mel spectrogram. Its output is the probability
that the turn is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import monotonic
from typing import TypeVar

import numpy as np

from providers.onnx_session import lean_session, release_freed_memory

RATE = 16000
WINDOW_S = 8
COMPLETE_ABOVE = 0.5
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"

_T = TypeVar("_T")
# The model loads and runs on one thread of its own: glibc gives each thread that allocates
# its own heap, and the buffers of a run kept on the heaps of several pool threads cost a call
# process ≈15 MiB (bench/call_memory.py). One thread also keeps verdicts from competing with
# each other for the cores; they are short (≈0.1 s) and a slow one is no longer asked for.
_model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="end-of-turn")


async def on_model_thread(fn: Callable[..., _T], *args: object) -> _T:
    """Run `fn(*args)` on the end-of-turn model's thread (loading it there too)."""
    return await asyncio.get_running_loop().run_in_executor(_model_thread, fn, *args)


_N_FFT = 400
_HOP = 160
_N_MELS = 80


def packaged_model_path() -> Path:
    """The ONNX file inside the pipecat-ai wheel, found without importing pipecat."""
    spec = importlib.util.find_spec("pipecat")  # a top-level lookup runs no package code
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "audio" / "turn" / "smart_turn" / "data" / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{MODEL_FILE} not found: install the weight package with "
                            "`pip install --no-deps pipecat-ai==1.14.0` (./dev.sh does)")


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    # Linear below 1 kHz, logarithmic above: the scale Whisper's filterbank is built on.
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz < 1000.0, 3.0 * hz / 200.0,
                    15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * 27.0 / np.log(6.4))


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel < 15.0, 200.0 * mel / 3.0,
                    1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0))


def _mel_filters() -> np.ndarray:
    """(n_fft/2+1, 80) triangular filters, area-normalised (Slaney), 0 Hz to 8 kHz."""
    edges = _slaney_hz(np.linspace(_slaney_mel(np.array(0.0)), _slaney_mel(np.array(RATE / 2)),
                                   _N_MELS + 2))
    bins = np.linspace(0, RATE // 2, _N_FFT // 2 + 1)
    rising = (bins[:, None] - edges[None, :-2]) / np.diff(edges)[None, :-1]
    falling = (edges[None, 2:] - bins[:, None]) / np.diff(edges)[None, 1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


_FILTERS = _mel_filters()
_HANN = np.hanning(_N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def features(audio: np.ndarray) -> np.ndarray:
    """Float audio at 16 kHz → the model's (80, 800) float32 log-mel input."""
    n = RATE * WINDOW_S
    x = np.asarray(audio, dtype=np.float32)[-n:]
    x = np.pad(x, (n - x.size, 0))  # silence in front: the end of the turn stays at the end
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2  # (frames, bins)
    log_mel = np.log10(np.maximum(power @ _FILTERS, 1e-10)).T[:, :-1]
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


class EndOfTurnModel:
    """The loaded model, shared by every call in the process (onnxruntime sessions are
    thread-safe; one intra-op thread each, so calls do not fight over the cores)."""

    _shared: EndOfTurnModel | None = None
    _lock = threading.Lock()

    def __init__(self, session: object) -> None:
        self._session = session
        # How long a verdict has taken lately (wall clock, queueing included): on a busy
        # machine it arrives after the fallback silence has ended the turn anyway, and asking
        # only takes CPU from the calls' speech recognition.
        self._recent_s = 0.0

    def worth_asking(self, within_s: float) -> bool:
        """Whether a verdict is likely well before `within_s` (the rest of the fallback
        silence): in its first half, or the turn gains little for the CPU it costs. A skipped
        question lowers the estimate, so the model is tried again once the machine has calmed
        down."""
        if self._recent_s < within_s / 2:
            return True
        self._recent_s *= 0.85
        return False

    @classmethod
    def load(cls, *, path: str | Path | None = None) -> EndOfTurnModel:
        with cls._lock:
            if cls._shared is not None and path is None:
                return cls._shared
            model = cls(lean_session(path or packaged_model_path()))
            if path is None:
                cls._shared = model
            return model

    def completeness_sync(self, pcm16: bytes) -> float:
        """Probability that 16 kHz PCM16 speech (ending in the pause) is a finished turn."""
        audio = np.frombuffer(pcm16[:len(pcm16) - len(pcm16) % 2], dtype="<i2")
        feats = features(audio.astype(np.float32) / 32768.0)[None]
        out = self._session.run(None, {"input_features": feats})  # type: ignore[attr-defined]
        return float(np.asarray(out[0]).reshape(-1)[0])

    async def completeness(self, pcm16: bytes) -> float:
        # Only the last 8 s matter: copy no more than that into the worker thread.
        started = monotonic()
        try:
            return await on_model_thread(self.completeness_sync, pcm16[-RATE * WINDOW_S * 2:])
        finally:
            took = monotonic() - started
            self._recent_s = took if not self._recent_s else 0.7 * self._recent_s + 0.3 * took
            # After the verdict, not before it: the trim (≈3 ms) delays no turn. (At interpreter
            # shutdown the thread takes no more work: nothing to trim for then.)
            with contextlib.suppress(RuntimeError):
                _model_thread.submit(release_freed_memory)
