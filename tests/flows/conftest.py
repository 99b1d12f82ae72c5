"""Fixtures for the flow engine tests: a scripted LLM installed in the API app, a loopback
HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from flow_fakes import LoopbackHTTP, ScriptedLLM, scripted_opener


@pytest.fixture
def scripted_llm(app) -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM()
    state = app.state.aico
    previous, state.llm_opener = state.llm_opener, scripted_opener(llm)
    yield llm
    state.llm_opener = previous


@pytest.fixture
async def loopback_http() -> AsyncIterator[LoopbackHTTP]:
    server = LoopbackHTTP()
    yield server
    server.close()
