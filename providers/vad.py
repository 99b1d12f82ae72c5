"""Silero voice activity detection on onnxruntime, with the model livekit-plugins-silero ships.

    vad = SileroVAD.load()                    # once per process (the ONNX session is shared)
    detector = vad.detector(sample_rate=16000)  # one per audio stream: it holds RNN state
    for ev in detector.push(pcm16):           # any frame size
        ...  # VADEvent('speech_start' | 'speech_end', at_s, probability)
    detector.probability                      # speech probability of the last 32 ms window

Silero runs on 8 or 16 kHz windows (256 / 512 samples); other rates are resampled linearly.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from providers.pcm import pcm16_to_float, resample

_WINDOW = {8000: 256, 16000: 512}
_CONTEXT = {8000: 32, 16000: 64}


def packaged_model_path() -> Path:
    """The onnx file livekit-plugins-silero ships, found WITHOUT importing that package: its
    `__init__` registers a livekit plugin, which is allowed only on the main thread (a Ray
    actor's methods run on another)."""
    spec = importlib.util.find_spec("livekit.plugins")  # a namespace package: nothing runs
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "silero" / "resources" / "silero_vad.onnx"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("silero_vad.onnx not found: is livekit-plugins-silero installed?")


@dataclass(frozen=True)
class VADEvent:
    type: Literal["speech_start", "speech_end"]
    at_s: float  # stream time of the window that decided it
    probability: float


@dataclass(frozen=True)
class VADOptions:
    activation_threshold: float = 0.5
    deactivation_threshold: float = 0.35
    min_speech_s: float = 0.05
    min_silence_s: float = 0.55


class SileroVAD:
    def __init__(self, session: object, *, options: VADOptions | None = None) -> None:
        self._session = session
        self.options = options or VADOptions()

    _shared: SileroVAD | None = None
    _lock = threading.Lock()

    @classmethod
    def load(cls, *, path: str | Path | None = None,
             options: VADOptions | None = None) -> SileroVAD:
        """The process-wide VAD (one ONNX session; detectors are cheap)."""
        with cls._lock:
            if cls._shared is None or path is not None:
                from providers.onnx_session import lean_session

                vad = cls(lean_session(path or packaged_model_path()), options=options)
                if path is not None:
                    return vad
                cls._shared = vad
            if options is not None:
                return cls(cls._shared._session, options=options)
            return cls._shared

    def detector(self, *, sample_rate: int = 16000) -> SpeechDetector:
        return SpeechDetector(self._session, sample_rate=sample_rate, options=self.options)


@dataclass
class SpeechDetector:
    session: object
    sample_rate: int
    options: VADOptions
    probability: float = 0.0
    speaking: bool = False
    _model_rate: int = 16000
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    _context: np.ndarray = field(default_factory=lambda: np.zeros((1, 64), np.float32))
    _windows: int = 0
    _run_s: float = 0.0  # how long the current candidate change has held

    def __post_init__(self) -> None:
        self._model_rate = 8000 if self.sample_rate == 8000 else 16000
        self._context = np.zeros((1, _CONTEXT[self._model_rate]), np.float32)

    @property
    def window_s(self) -> float:
        return _WINDOW[self._model_rate] / self._model_rate

    def reset(self) -> None:
        self._state.fill(0)
        self._context.fill(0)
        self._pending = np.zeros(0, np.float32)
        self.speaking = False
        self._run_s = 0.0

    def push(self, pcm16: bytes) -> list[VADEvent]:
        """Feed 16-bit mono PCM; returns the speech starts/ends it decided."""
        audio = resample(pcm16_to_float(pcm16), self.sample_rate, self._model_rate)
        self._pending = np.concatenate([self._pending, audio])
        window = _WINDOW[self._model_rate]
        events: list[VADEvent] = []
        while self._pending.size >= window:
            chunk, self._pending = self._pending[:window], self._pending[window:]
            self.probability = self._infer(chunk)
            self._windows += 1
            event = self._decide()
            if event is not None:
                events.append(event)
        return events

    def _infer(self, chunk: np.ndarray) -> float:
        x = np.concatenate([self._context, chunk[None, :]], axis=1)
        out, self._state = self.session.run(  # type: ignore[attr-defined]
            None, {"input": x, "state": self._state,
                   "sr": np.array(self._model_rate, dtype=np.int64)})
        self._context = x[:, -self._context.shape[1]:]
        return float(out.item())

    def _decide(self) -> VADEvent | None:
        o = self.options
        at = self._windows * self.window_s
        if not self.speaking:
            self._run_s = self._run_s + self.window_s if self.probability >= \
                o.activation_threshold else 0.0
            if self._run_s >= o.min_speech_s:
                self.speaking, self._run_s = True, 0.0
                return VADEvent("speech_start", at, self.probability)
        else:
            self._run_s = self._run_s + self.window_s if self.probability < \
                o.deactivation_threshold else 0.0
            if self._run_s >= o.min_silence_s:
                self.speaking, self._run_s = False, 0.0
                return VADEvent("speech_end", at, self.probability)
        return None
