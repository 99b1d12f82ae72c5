"""Persistent user facts through the chat API: after each turn the session's LLM extracts
(type, value) facts with structured output, off the reply; an llm node with `"memory":
{"facts": true}` gets the user's current facts as a profile; a newer fact of the same type
supersedes the older, which is kept with `superseded_at`; erasure removes them all."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
from flow_fakes import linear, publish
from test_episodic_memory import ask, remembered


def facts_flow() -> dict[str, Any]:
    return linear(
        "knows you",
        {"id": "hear", "type": "listen"},
        {"id": "answer", "type": "llm", "instructions": "Be brief.", "memory": {"facts": True}},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "answer"},
               {"from": "answer", "to": "hear"}])


async def facts_when(api: httpx.AsyncClient, user_id: str, current: dict[str, str], *,
                     within_s: float = 60) -> list[dict[str, Any]]:
    """The user's facts once their current ones are `current`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        facts = (await api.get(f"/v1/users/{user_id}/memory")).json()["facts"]
        now = {f["type"]: f["value"] for f in facts if f["superseded_at"] is None}
        if now == current:
            return facts
        assert asyncio.get_running_loop().time() < deadline, facts
        await asyncio.sleep(0.05)


async def test_a_fact_is_in_the_next_session_of_the_same_user_only_and_a_newer_one_wins(
        make_org, scripted_llm, pool: asyncpg.Pool):
    org = await make_org()
    flow = await publish(org.client, facts_flow())
    await ask(org.client, flow, {"id": "ada"}, "Hello! My home city is Lisbon.", scripted_llm)
    # "home city" is one of the spellings of the type `city` (the normaliser's work).
    await facts_when(org.client, "ada", {"city": "Lisbon"})

    system = await ask(org.client, flow, {"id": "ada"}, "Any tips for tonight?", scripted_llm)
    assert "What is known about this user:\n- city: Lisbon" in system
    system = await ask(org.client, flow, {"id": "bob"}, "Any tips for tonight?", scripted_llm)
    assert "Lisbon" not in system and "known about this user" not in system

    await ask(org.client, flow, {"id": "ada"}, "I moved: my home city is Porto now.",
              scripted_llm)
    facts = await facts_when(org.client, "ada", {"city": "Porto"})
    [old] = [f for f in facts if f["value"] == "Lisbon"]
    assert old["superseded_at"] is not None  # kept for audit
    system = await ask(org.client, flow, {"id": "ada"}, "Any tips for tonight?", scripted_llm)
    assert "city: Porto" in system and "Lisbon" not in system

    r = await org.client.delete("/v1/users/ada/memory")
    assert r.json()["deleted"]["facts"] == 2
    assert await pool.fetchval("SELECT count(*) FROM memory_facts WHERE org_id = $1"
                               " AND user_id = 'ada'", org.id) == 0
    assert (await org.client.get("/v1/users/ada/memory")).json()["facts"] == []


async def test_a_flow_without_facts_extracts_none(make_org, scripted_llm, pool: asyncpg.Pool):
    org = await make_org()
    doc = facts_flow()
    doc["nodes"][2]["memory"] = {"episodic": 2}
    flow = await publish(org.client, doc)
    await ask(org.client, flow, {"id": "ada"}, "My home city is Lisbon.", scripted_llm)
    await ask(org.client, flow, {"id": "ada"}, "Hello again.", scripted_llm)
    await remembered(org.client, "ada", 2)  # what the turns set off has run
    assert await pool.fetchval("SELECT count(*) FROM memory_facts WHERE org_id = $1",
                               org.id) == 0
