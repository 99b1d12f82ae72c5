"""The `rag` node through the chat API: a caller's question is searched in the organization's
knowledge base, the chunk that holds the answer reaches the llm node's context, and the
session's events record what the answer was based on."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from flow_fakes import linear, publish, send, start_chat
from test_knowledge_api import HANDBOOK, make_kb, wait_ready

from db.session_events import list_session_events_for_session


def rag_flow(kb_ids: list[str]) -> dict:
    return linear(
        "ask the handbook",
        {"id": "hear", "type": "listen"},
        {"id": "find", "type": "rag", "knowledge_bases": kb_ids, "top_k": 2, "into": "context"},
        {"id": "answer", "type": "llm", "say": True,
         "instructions": "Answer from these sources and cite them by number:\n{{ context }}"},
        {"id": "bye", "type": "end"})


async def test_the_answer_context_holds_the_chunk_with_the_answer(make_org, scripted_llm,
                                                                   pool: asyncpg.Pool):
    org = await make_org()
    kb = await make_kb(org.client)
    doc = (await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                 json={"title": "Lighthouse handbook", "text": HANDBOOK})).json()
    assert (await wait_ready(org.client, kb, doc["id"]))[-1]["status"] == "ready"
    flow = await publish(org.client, rag_flow([kb]))
    session = await start_chat(org.client, flow)

    reply = await send(org.client, session["id"], "Who was the last keeper?")
    assert reply["status"] == "ended"
    [prompt] = scripted_llm.requests
    system = prompt[0].content
    assert "[1] Lighthouse handbook — Keepers" in system
    assert "Marguerite Olsen, retired in 1961" in system

    events = await list_session_events_for_session(pool, session_id=UUID(session["id"]))
    [retrieved] = [e for e in events if e["type"] == "rag.retrieved"]
    payload = retrieved["payload"]
    assert payload["query"] == "Who was the last keeper?" and payload["error"] is None
    assert payload["chunks"][0]["document_id"] == doc["id"]
    assert "Marguerite Olsen" in payload["chunks"][0]["text"]
    r = await org.client.get(f"/v1/sessions/{session['id']}/events")
    assert any(e["type"] == "rag.retrieved" for e in r.json()["items"]), r.json()


async def test_a_rag_node_over_another_organizations_base_finds_nothing(make_org, scripted_llm,
                                                                         pool: asyncpg.Pool):
    owner, other = await make_org(), await make_org()
    kb = await make_kb(owner.client)
    doc = (await owner.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                   json={"title": "private", "text": HANDBOOK})).json()
    await wait_ready(owner.client, kb, doc["id"])
    flow = await publish(other.client, rag_flow([kb]))
    session = await start_chat(other.client, flow)

    await send(other.client, session["id"], "Who was the last keeper?")
    [prompt] = scripted_llm.requests
    assert "Olsen" not in prompt[0].content
    events = await list_session_events_for_session(pool, session_id=UUID(session["id"]))
    [retrieved] = [e for e in events if e["type"] == "rag.retrieved"]
    assert retrieved["payload"]["chunks"] == []
    assert "not found" in retrieved["payload"]["error"]
