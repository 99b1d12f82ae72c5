"""Fixtures for the memory and knowledge tests: the flow tests' scripted LLM installed in the
API app (it records every prompt, so a test sees what context the model was given)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))

from flow_fakes import ScriptedLLM, scripted_opener


@pytest.fixture
def scripted_llm(app) -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM()
    state = app.state.aico
    previous, state.llm_opener = state.llm_opener, scripted_opener(llm)
    yield llm
    state.llm_opener = previous
