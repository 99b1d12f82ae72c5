"""Fixtures for the memory and knowledge tests: the flow tests' scripted LLM installed in the
API app (it records every prompt, so a test sees what context the model was given); asked for
facts (the `facts` response format), it answers the "my <type> is <value>" statements of the
user's message, as a model doing structured extraction would."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))

from flow_fakes import ScriptedLLM, scripted_opener

from providers.llm import ChatMessage, LLMChunk


class FactsLLM(ScriptedLLM):
    async def _chat_impl(self, messages: list[ChatMessage], *, response_format: Any,
                         **kwargs: Any) -> AsyncIterator[LLMChunk]:
        if response_format and response_format["json_schema"]["name"] == "facts":
            user = messages[-1].content
            facts = [{"type": t.replace(" ", "_"), "value": v} for t, v in
                     re.findall(r"[Mm]y ([a-z ]+?) is ([A-Za-z]+)", user)]
            yield LLMChunk(text=json.dumps({"facts": facts}), finish_reason="stop")
            return
        async for chunk in super()._chat_impl(messages, response_format=response_format,
                                              **kwargs):
            yield chunk


@pytest.fixture
def scripted_llm(app) -> Iterator[ScriptedLLM]:
    llm = FactsLLM()
    state = app.state.aico
    previous, state.llm_opener = state.llm_opener, scripted_opener(llm)
    yield llm
    state.llm_opener = previous
