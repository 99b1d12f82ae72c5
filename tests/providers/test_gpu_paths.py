"""The CUDA paths: Whisper in float16 on the GPU and a model deployment with `num_gpus`.
Skipped without a CUDA device (detected through CTranslate2, without torch)."""

from __future__ import annotations

import pytest

from providers.faster_whisper_stt import FasterWhisperSTT
from providers.runtime import open_stt
from tests.providers.conftest import word_error_rate

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


async def test_whisper_runs_float16_on_cuda(piper, monkeypatch):
    monkeypatch.setenv("AICO_MODELS", "inprocess")
    stt = await open_stt({"kind": "faster-whisper", "device": "auto"}, secrets={})
    assert isinstance(stt, FasterWhisperSTT) and stt.device == "cuda"
    sentence = "Please call me back tomorrow morning."
    pcm = b"".join([f.pcm16 async for f in piper.synthesize(sentence)])
    transcript = await stt.recognize(pcm, sample_rate=piper.sample_rate)
    assert word_error_rate(sentence, transcript.text) <= 0.10

