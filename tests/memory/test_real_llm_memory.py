"""With the real offline LLM (SmolLM2-135M through llama.cpp, in this process) and the real
MiniLM: a flow that retrieves from a knowledge base and recalls the user's earlier turns gives
the model both (the chunk with the answer, the remembered turn) and streams a reply. The model
is tiny, so the test asserts on what it was given and that it answered, not on its wit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from flow_fakes import linear, publish, send, start_chat
from test_episodic_memory import remembered
from test_knowledge_api import HANDBOOK, make_kb, wait_ready

from db.session_events import list_session_events_for_session

pytestmark = pytest.mark.slow


class RecordingLLM:
    """The real provider, with every prompt it is sent kept for the test to read."""

    def __init__(self, llm: Any, prompts: list[list[Any]]) -> None:
        self._llm, self._prompts = llm, prompts

    async def chat(self, messages: list[Any], **kwargs: Any) -> AsyncIterator[Any]:
        self._prompts.append(messages)
        async for chunk in self._llm.chat(messages, **kwargs):
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


@pytest.fixture
def real_llm_prompts(app, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[Any]]]:
    from providers import runtime

    monkeypatch.setenv("AICO_MODELS", "inprocess")
    prompts: list[list[Any]] = []

    async def open_llm(config: dict) -> Any:
        return RecordingLLM(await runtime.open_llm(config, secrets={}), prompts)

    state = app.state.aico
    previous, state.llm_opener = state.llm_opener, open_llm
    yield prompts
    state.llm_opener = previous


async def test_rag_and_episodic_memory_reach_the_real_model(make_org, real_llm_prompts,
                                                            pool: asyncpg.Pool):
    org = await make_org()
    kb = await make_kb(org.client)
    doc = (await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                 json={"title": "Lighthouse handbook", "text": HANDBOOK})).json()
    assert (await wait_ready(org.client, kb, doc["id"]))[-1]["status"] == "ready"
    flow = await publish(org.client, linear(
        "guide",
        {"id": "hear", "type": "listen"},
        {"id": "find", "type": "rag", "knowledge_bases": [kb], "top_k": 2},
        {"id": "answer", "type": "llm", "max_tokens": 40, "temperature": 0,
         "instructions": "Answer briefly from these sources:\n{{ context }}",
         "memory": {"episodic": 2}},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "find"},
               {"from": "find", "to": "answer"}, {"from": "answer", "to": "hear"}]))

    first = await start_chat(org.client, flow, user={"id": "ada"})
    await send(org.client, first["id"], "I am writing a school report about keepers.")
    await remembered(org.client, "ada", 1)

    second = await start_chat(org.client, flow, user={"id": "ada"})
    reply = await send(org.client, second["id"], "Who was the last keeper of the lighthouse?")
    (answer,) = reply["messages"]
    assert answer["text"].strip()
    system = real_llm_prompts[-1][0].content
    assert "Marguerite Olsen, retired in 1961" in system
    assert "I am writing a school report about keepers." in system

    events = await list_session_events_for_session(pool, session_id=UUID(second["id"]))
    [retrieved] = [e for e in events if e["type"] == "rag.retrieved"]
    assert any("Marguerite Olsen" in c["text"] for c in retrieved["payload"]["chunks"])
    (llm_reply,) = [e for e in events if e["type"] == "llm.reply"]
    assert llm_reply["payload"]["text"] == answer["text"]
