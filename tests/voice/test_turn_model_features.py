"""The end-of-turn model sees what it was trained on: our numpy log-mel features equal the ones
the smart-turn authors compute (their reference file ships in the same wheel as the weights;
it is loaded here by path, for the comparison only, without importing the pipecat package)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from providers import turn_model
from providers.turn_model import (
    RATE,
    WINDOW_S,
    EndOfTurnModel,
    features,
    packaged_model_path,
)


def reference_features() -> object:
    path = packaged_model_path().parents[1] / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("smart_turn_reference_features", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_whisper_log_mel_features


@pytest.mark.parametrize("seconds", [0.4, 3.0, WINDOW_S + 1.5])
def test_features_equal_the_reference_for_short_and_long_turns(seconds: float) -> None:
    rng = np.random.default_rng(7)
    audio = (rng.standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)
    # The reference is handed what their analyzer hands it: the last 8 s, silence in front.
    window = audio[-RATE * WINDOW_S:]
    window = np.pad(window, (RATE * WINDOW_S - window.size, 0))
    expected = reference_features()(window)
    got = features(audio)
    assert got.shape == expected.shape == (80, 800)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


async def test_the_model_is_not_asked_while_its_verdicts_come_after_the_silence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy machine a verdict arrives after the fallback silence has ended the turn: the
    turn detector stops asking (it only takes CPU from the calls), and tries again later."""
    # The model's clock, moved by the verdict alone: a verdict takes 0.2 s however busy the
    # machine running this test is.
    clock = [1000.0]
    monkeypatch.setattr(turn_model, "monotonic", lambda: clock[0])

    class SlowSession:
        def run(self, _outputs: Any, _feeds: Any) -> list[Any]:
            clock[0] += 0.2
            return [[[0.9]]]

    model = EndOfTurnModel(SlowSession())
    assert model.worth_asking(0.3)  # nothing known yet
    assert await model.completeness(b"\0\0" * 16000) == pytest.approx(0.9)
    assert model.worth_asking(0.6)  # 0.2 s: well within 0.6 s
    assert not model.worth_asking(0.3)
    asked_again = [model.worth_asking(0.3) for _ in range(20)]
    assert asked_again[0] is False and True in asked_again
