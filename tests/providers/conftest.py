"""Fixtures for provider tests: real packaged models, loaded once per test session."""

from __future__ import annotations

import re

import pytest

from providers.runtime import open_embeddings, open_llm, open_stt, open_tts


def cuda_devices() -> int:
    """CUDA devices visible to CTranslate2 (no torch needed)."""
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except Exception:  # noqa: BLE001 - no CUDA runtime at all
        return 0


@pytest.fixture(autouse=True)
def _skip_gpu_tests_without_cuda(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("gpu") and cuda_devices() == 0:
        pytest.skip("no CUDA device")


@pytest.fixture(autouse=True)
def _models_in_process(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # Tests that exercise the Serve deployment opt out with the `serve_models` fixture.
    if "serve_models" not in request.fixturenames:
        monkeypatch.setenv("AICO_MODELS", "inprocess")


async def _in_process(opener, config: dict):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AICO_MODELS", "inprocess")
        return await opener(config, secrets={})


@pytest.fixture(scope="session")
async def piper():
    # No noise: the same audio every run, so a transcript does not depend on Piper's draw
    # (with its default noise, one synthesis in ~30 was heard "jumped" or "quit").
    return await _in_process(open_tts, {"kind": "piper", "noise_scale": 0.0,
                                        "noise_w_scale": 0.0})


@pytest.fixture(scope="session")
async def whisper():
    return await _in_process(open_stt, {"kind": "faster-whisper"})


@pytest.fixture(scope="session")
async def smollm():
    return await _in_process(open_llm, {"kind": "llamacpp", "temperature": 0.0})


@pytest.fixture(scope="session")
async def minilm():
    return await _in_process(open_embeddings, {"kind": "minilm"})


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over normalised words, divided by the reference length."""
    ref = re.findall(r"[a-z0-9']+", reference.lower())
    hyp = re.findall(r"[a-z0-9']+", hypothesis.lower())
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


@pytest.fixture(scope="session")
def serve_models(ray_cluster: None):
    """The shared local Ray with the `models` Serve app (≈15-25 s, once per test session)."""
    from ray import serve

    from providers.runtime import forget_models
    from serve_apps.models import build_models_app

    serve.run(build_models_app(providers={
        "stt": {"kind": "faster-whisper"}, "llm": {"kind": "llamacpp", "temperature": 0.0},
        "tts": {"kind": "piper"}, "embeddings": {"kind": "minilm"}}),
        name="models", route_prefix=None)
    forget_models()
    yield serve
    serve.delete("models")
    forget_models()
