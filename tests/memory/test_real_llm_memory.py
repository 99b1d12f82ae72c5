"""With the real offline LLM (SmolLM2-135M through llama.cpp, in this process) and the real
MiniLM: a flow that retrieves from a knowledge base and recalls the user's earlier turns gives
the model both (the chunk with the answer, the remembered turn) and streams a reply; the same
model extracts the facts a user states (name, job) under a JSON schema, they are in
the context of the user's next session and not another user's, and a newer name supersedes the
older. The model is tiny, so the tests say simple things plainly and assert on what it was
given and what was stored, not on its wit (bench/memory_facts.py measures the extractor on a
wider labelled set)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from flow_fakes import linear, publish, send, start_chat
from test_episodic_memory import remembered
from test_knowledge_api import HANDBOOK, make_kb, wait_ready
from test_user_facts import facts_when

from db.session_events import list_session_events_for_session

pytestmark = pytest.mark.slow

# The response formats of the fact-extraction requests the real model was sent (this test run).
extraction_formats: list[dict[str, Any]] = []
# The 135M model on a shared 2-core machine: one extraction has taken up to a minute here.
EXTRACTION_WAIT_S = 300


class RecordingLLM:
    """The real provider, with every prompt it is sent kept for the test to read (and every
    structured-output request's response format)."""

    def __init__(self, llm: Any, prompts: list[list[Any]], formats: list[dict[str, Any]]
                 ) -> None:
        self._llm, self._prompts, self.formats = llm, prompts, formats

    async def chat(self, messages: list[Any], **kwargs: Any) -> AsyncIterator[Any]:
        if kwargs.get("response_format"):
            self.formats.append(kwargs["response_format"])
        else:
            self._prompts.append(messages)  # the replies' prompts
        async for chunk in self._llm.chat(messages, **kwargs):
            yield chunk

    async def complete(self, messages: list[Any], **kwargs: Any) -> Any:
        if kwargs.get("response_format"):
            self.formats.append(kwargs["response_format"])
        return await self._llm.complete(messages, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


@pytest.fixture
def real_llm_prompts(app, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[Any]]]:
    from providers import runtime

    monkeypatch.setenv("AICO_MODELS", "inprocess")
    prompts: list[list[Any]] = []
    extraction_formats.clear()

    async def open_llm(config: dict) -> Any:
        return RecordingLLM(await runtime.open_llm(config, secrets={}), prompts,
                            extraction_formats)

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


def facts_flow() -> dict[str, Any]:
    return linear(
        "knows you",
        {"id": "hear", "type": "listen"},
        {"id": "answer", "type": "llm", "instructions": "Be brief.", "max_tokens": 8,
         "temperature": 0, "memory": {"facts": True}},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "answer"},
               {"from": "answer", "to": "hear"}])


async def test_the_real_model_extracts_facts_for_the_next_session_and_a_newer_one_wins(
        make_org, real_llm_prompts, pool: asyncpg.Pool):
    org = await make_org()
    flow = await publish(org.client, facts_flow())

    first = await start_chat(org.client, flow, user={"id": "ada"})
    await send(org.client, first["id"], "My name is Alice.")
    await facts_when(org.client, "ada", {"name": "Alice"}, within_s=EXTRACTION_WAIT_S)
    await send(org.client, first["id"], "I work as a nurse.")
    await facts_when(org.client, "ada", {"name": "Alice", "job": "nurse"},
                     within_s=EXTRACTION_WAIT_S)
    # The model was held to the schema: a known type, and a value made of the user's words.
    value = extraction_formats[-1]["json_schema"]["schema"]["properties"]["facts"]["items"][
        "properties"]["value"]
    assert "nurse" in value["pattern"] and "Alice" not in value["pattern"]

    asked = len(extraction_formats)
    second = await start_chat(org.client, flow, user={"id": "ada"})
    await send(org.client, second["id"], "Any tips for tonight?")
    system = real_llm_prompts[-1][0].content
    assert "What is known about this user:" in system
    assert "- job: nurse" in system and "- name: Alice" in system

    other = await start_chat(org.client, flow, user={"id": "bob"})
    await send(org.client, other["id"], "Any tips for tonight?")
    system = real_llm_prompts[-1][0].content
    assert "Alice" not in system and "known about this user" not in system
    assert len(extraction_formats) == asked  # a question states nothing: no extraction call
    assert await pool.fetchval("SELECT count(*) FROM memory_facts WHERE org_id = $1"
                               " AND user_id = 'bob'", org.id) == 0

    third = await start_chat(org.client, flow, user={"id": "ada"})
    await send(org.client, third["id"], "Call me Sam.")
    facts = await facts_when(org.client, "ada", {"name": "Sam", "job": "nurse"},
                             within_s=EXTRACTION_WAIT_S)
    [alice] = [f for f in facts if f["value"] == "Alice"]
    assert alice["superseded_at"] is not None  # kept for audit
    fourth = await start_chat(org.client, flow, user={"id": "ada"})
    await send(org.client, fourth["id"], "Any tips for tonight?")
    system = real_llm_prompts[-1][0].content
    assert "- name: Sam" in system and "Alice" not in system
