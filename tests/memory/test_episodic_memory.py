"""Episodic memory through the chat API, with the real embedded PostgreSQL and the real MiniLM:
what a user says in one session is in the llm node's context in their next session (with its
date), not in another user's; a cluster shares it with its members only; erasing a user's
memory leaves nothing of theirs in any table."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from flow_fakes import linear, publish, send, start_chat

pytestmark = pytest.mark.slow


def remembering_flow() -> dict[str, Any]:
    return linear(
        "remembers",
        {"id": "hear", "type": "listen"},
        {"id": "answer", "type": "llm", "instructions": "Be brief.",
         "memory": {"episodic": 3, "budget_tokens": 200}},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "answer"},
               {"from": "answer", "to": "hear"}])


async def remembered(api: httpx.AsyncClient, user_id: str, count: int) -> dict[str, Any]:
    """The user's memory once it holds `count` episodes (they are stored off the reply)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        r = await api.get(f"/v1/users/{user_id}/memory")
        assert r.status_code == 200, r.text
        if r.json()["total"] >= count:
            return r.json()
        assert asyncio.get_running_loop().time() < deadline, r.json()
        await asyncio.sleep(0.05)


async def ask(api: httpx.AsyncClient, flow: str, user: dict[str, str], text: str,
              llm: Any) -> str:
    """Start a session for `user`, say `text`; the system prompt the model got."""
    session = await start_chat(api, flow, user=user)
    await send(api, session["id"], text)
    return llm.requests[-1][0].content


async def test_a_users_earlier_turn_is_recalled_in_their_next_session_only(make_org,
                                                                             scripted_llm):
    org = await make_org()
    flow = await publish(org.client, remembering_flow())
    await ask(org.client, flow, {"id": "ada"}, "My dog is called Biscuit and loves the beach.",
              scripted_llm)
    await ask(org.client, flow, {"id": "ada"}, "I work as a lighthouse keeper.", scripted_llm)
    memory = await remembered(org.client, "ada", 2)
    assert {e["text"] for e in memory["episodic"]} == {
        "My dog is called Biscuit and loves the beach.", "I work as a lighthouse keeper."}

    system = await ask(org.client, flow, {"id": "ada"}, "What is my dog's name?", scripted_llm)
    assert "earlier conversations" in system
    recalled = system.split("earlier conversations", 1)[1]
    assert "Biscuit" in recalled
    first = recalled.strip().splitlines()[1]
    assert first.startswith(f"- {memory['episodic'][0]['created_at'][:10]}: ")
    assert "Biscuit" in first  # most relevant first

    system = await ask(org.client, flow, {"id": "bob"}, "What is my dog's name?", scripted_llm)
    assert "Biscuit" not in system and "earlier conversations" not in system
    other = await make_org()
    other_flow = await publish(other.client, remembering_flow())
    system = await ask(other.client, other_flow, {"id": "ada"}, "What is my dog's name?",
                       scripted_llm)
    assert "Biscuit" not in system


async def test_a_cluster_shares_memory_and_a_non_member_does_not_see_it(make_org,
                                                                          scripted_llm):
    org = await make_org()
    flow = await publish(org.client, remembering_flow())
    await ask(org.client, flow, {"id": "mum", "cluster": "family"},
              "The wifi password is seashell42.", scripted_llm)
    await remembered(org.client, "mum", 1)

    system = await ask(org.client, flow, {"id": "kid", "cluster": "family"},
                       "What is the wifi password?", scripted_llm)
    assert "seashell42" in system
    system = await ask(org.client, flow, {"id": "guest", "cluster": "visitors"},
                       "What is the wifi password?", scripted_llm)
    assert "seashell42" not in system
    system = await ask(org.client, flow, {"id": "neighbour"}, "What is the wifi password?",
                       scripted_llm)
    assert "seashell42" not in system


async def test_an_llm_node_without_memory_recalls_nothing(make_org, scripted_llm):
    org = await make_org()
    doc = remembering_flow()
    del doc["nodes"][2]["memory"]
    flow = await publish(org.client, doc)
    await ask(org.client, flow, {"id": "ada"}, "My dog is called Biscuit.", scripted_llm)
    await remembered(org.client, "ada", 1)
    system = await ask(org.client, flow, {"id": "ada"}, "What is my dog's name?", scripted_llm)
    assert "Biscuit" not in system


async def test_erasing_a_users_memory_leaves_nothing_of_theirs(make_org, scripted_llm,
                                                                pool: asyncpg.Pool):
    org = await make_org()
    # A webhook copies turn texts into its deliveries (migration 0082's triggers).
    await pool.execute(
        "INSERT INTO webhooks (org_id, url, events, secret_key_id, secret_nonce,"
        " secret_ciphertext) VALUES ($1, 'https://hooks.example/x', $2, 'k', '', '')",
        org.id, ["session.started", "turn.completed", "session.ended"])
    flow = await publish(org.client, remembering_flow())
    await ask(org.client, flow, {"id": "ada", "cluster": "c"}, "My dog is Biscuit.",
              scripted_llm)
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE org_id = $1"
                               " AND payload::text LIKE '%Biscuit%'", org.id) >= 1
    await ask(org.client, flow, {"id": "bob", "cluster": "c"}, "My cat is Pepper.",
              scripted_llm)
    await remembered(org.client, "ada", 1)
    await remembered(org.client, "bob", 1)

    viewer = await make_org(role="viewer")
    assert (await viewer.client.delete("/v1/users/ada/memory")).status_code == 403
    r = await org.client.delete("/v1/users/ada/memory")
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == {"episodes": 1, "facts": 0, "sessions": 1}

    assert (await org.client.get("/v1/users/ada/memory")).json()["total"] == 0
    found = await pool.fetchval(
        "SELECT (SELECT count(*) FROM memory_episodes WHERE org_id = $1 AND user_id = 'ada')"
        " + (SELECT count(*) FROM sessions WHERE org_id = $1 AND user_id = 'ada')"
        " + (SELECT count(*) FROM session_events e WHERE e.org_id = $1"
        "     AND e.payload::text LIKE '%Biscuit%')"
        " + (SELECT count(*) FROM transcript_turns t WHERE t.org_id = $1"
        "     AND t.text LIKE '%Biscuit%')", org.id)
    assert found == 0
    # Nothing of hers in any organization table, whatever feature stored it.
    tables = await pool.fetch(
        "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t"
        " USING (table_schema, table_name) WHERE c.table_schema = 'public'"
        " AND c.column_name = 'org_id' AND t.table_type = 'BASE TABLE'")
    assert len(tables) > 10
    for table in tables:
        name = table["table_name"]
        left = await pool.fetchval(
            f'SELECT count(*) FROM "{name}" t WHERE org_id = $1 AND t::text LIKE \'%Biscuit%\'',
            org.id)
        assert left == 0, name
    # Bob, in the same cluster, keeps his own memory; it no longer holds anything of Ada.
    assert (await org.client.get("/v1/users/bob/memory")).json()["total"] == 1
    system = await ask(org.client, flow, {"id": "bob", "cluster": "c"}, "What are my pets?",
                       scripted_llm)
    assert "Pepper" in system and "Biscuit" not in system
