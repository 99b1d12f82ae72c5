"""How the `models` app shares the CPU among calls: what reaches the TTS replica's scheduler,
and how many threads each runtime asks for on this machine."""

from __future__ import annotations

import os

from aico.settings import Settings
from providers import llamacpp_llm
from providers.configs import FasterWhisperConfig, LlamaCppConfig
from providers.faster_whisper_stt import cpu_threads
from serve_apps.models.app import deployment_resources


def test_every_calls_pending_sentence_reaches_the_tts_replica(monkeypatch) -> None:
    monkeypatch.delenv("AICO_MODEL_DEPLOYMENTS", raising=False)
    # Eight callers and their greetings fit: Serve queues nothing in arrival order in front of
    # the replica's first-sentence-first scheduler.
    assert deployment_resources(Settings())["tts"].options()["max_ongoing_requests"] == 64
    # An operator's own figure wins, and other capabilities keep their deployment's own.
    monkeypatch.setenv("AICO_MODEL_DEPLOYMENTS", '{"tts": {"max_ongoing_requests": 16}}')
    resources = deployment_resources(Settings())
    assert resources["tts"].options()["max_ongoing_requests"] == 16
    assert "max_ongoing_requests" not in resources["stt"].options()


def test_whisper_asks_for_no_more_threads_than_there_are_cpus() -> None:
    cpus = os.cpu_count() or 1
    assert cpu_threads(FasterWhisperConfig()) == min(4, cpus)
    assert cpu_threads(FasterWhisperConfig(cpu_threads=3)) == 3


def test_llama_cpp_leaves_half_the_cpus_to_speech() -> None:
    cpus = os.cpu_count() or 1
    assert llamacpp_llm.cpu_threads(LlamaCppConfig()) == max(1, cpus // 2)
    assert llamacpp_llm.cpu_threads(LlamaCppConfig(n_threads=2)) == 2
