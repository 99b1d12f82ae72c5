"""Fixtures for the flow engine tests: a scripted LLM installed in the API app, a loopback
HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from flow_fakes import LoopbackHTTP, ScriptedLLM, scripted_opener


@pytest.fixture
def scripted_llm(app) -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM()
    extras = app.state.aico.extras
    previous = extras.get("open_llm")
    extras["open_llm"] = scripted_opener(llm)
    yield llm
    if previous is None:
        extras.pop("open_llm", None)
    else:
        extras["open_llm"] = previous


@pytest.fixture
async def loopback_http() -> AsyncIterator[LoopbackHTTP]:
    server = LoopbackHTTP()
    yield server
    server.close()
