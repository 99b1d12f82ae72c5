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


async def test_memory_costs_nothing_until_a_flow_of_the_org_recalls_turns(make_org,
                                                                           scripted_llm,
                                                                           pool: asyncpg.Pool):
    from flows import memory

    org = await make_org()
    doc = remembering_flow()
    del doc["nodes"][2]["memory"]
    plain = await publish(org.client, doc)
    await ask(org.client, plain, {"id": "ada"}, "My dog is called Biscuit.", scripted_llm)
    system = await ask(org.client, plain, {"id": "ada"}, "What is my dog's name?", scripted_llm)
    assert "Biscuit" not in system
    await memory.settled()
    # No flow of the organization recalls turns: none was embedded or stored.
    assert await pool.fetchval("SELECT count(*) FROM memory_episodes WHERE org_id = $1",
                               org.id) == 0

    # Once one flow recalls, the turns of every flow of the organization are kept for it.
    remembering = await publish(org.client, remembering_flow())
    await ask(org.client, plain, {"id": "ada"}, "I work as a lighthouse keeper.", scripted_llm)
    memory_now = await remembered(org.client, "ada", 1)
    assert [e["text"] for e in memory_now["episodic"]] == ["I work as a lighthouse keeper."]
    system = await ask(org.client, remembering, {"id": "ada"}, "What is my job?", scripted_llm)
    assert "lighthouse keeper" in system


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


async def test_erasing_a_whatsapp_users_memory_removes_their_messages_and_calls(
        make_org, scripted_llm, pool: asyncpg.Pool):
    """A WhatsApp user is their wa id (and a caller their number): the channel rows kept under
    that id, not under a session, go with the rest."""
    org = await make_org()
    wa_id = "447700900123"
    flow = await publish(org.client, remembering_flow())
    await ask(org.client, flow, {"id": wa_id}, "My dog is Biscuit.", scripted_llm)
    await remembered(org.client, wa_id, 1)
    session_id = await pool.fetchval(
        "SELECT id FROM sessions WHERE org_id = $1 AND user_id = $2", org.id, wa_id)
    # What the WhatsApp channel and the phone channel keep of this user (their wire shapes).
    number_id = await pool.fetchval(
        "INSERT INTO whatsapp_numbers (org_id, phone_number_id, display_number, flow_id,"
        " verify_token_hash, app_secret_secret, access_token_secret) VALUES ($1, $2,"
        " '+1 555 0100', $3, 'h', 'META_APP_SECRET', 'META_TOKEN') RETURNING id",
        org.id, f"pn-{org.id}", flow)
    inbox_id = await pool.fetchval(
        "INSERT INTO whatsapp_inbox (org_id, number_id, wamid, wa_user, kind, sent_at, payload,"
        " processed_at) VALUES ($1, $2, 'wamid.in1', $3, 'text', now(), $4, now())"
        " RETURNING id", org.id, number_id, wa_id,
        '{"from": "447700900123", "text": {"body": "My dog is Biscuit."}}')
    await pool.execute(
        "INSERT INTO whatsapp_conversations (org_id, number_id, wa_user, flow_id, session_id,"
        " last_message_at) VALUES ($1, $2, $3, $4, $5, now())",
        org.id, number_id, wa_id, flow, session_id)
    await pool.execute(
        "INSERT INTO whatsapp_outbox (org_id, number_id, inbox_id, part, wa_user, body, status,"
        " wamid) VALUES ($1, $2, $3, 0, $4, $5, 'sent', 'wamid.out1')",
        org.id, number_id, inbox_id, wa_id, '{"type": "text", "text": {"body": "Hi Biscuit!"}}')
    await pool.execute(
        "INSERT INTO whatsapp_statuses (org_id, number_id, wamid, status, reported_at)"
        " VALUES ($1, $2, 'wamid.out1', 'delivered', now())", org.id, number_id)
    await pool.execute(
        "INSERT INTO phone_calls (org_id, provider, direction, from_number, to_number)"
        " VALUES ($1, 'twilio', 'inbound', $2, '+15550100')", org.id, wa_id)

    r = await org.client.delete(f"/v1/users/{wa_id}/memory")
    assert r.status_code == 200, r.text

    tables = await pool.fetch(
        "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t"
        " USING (table_schema, table_name) WHERE c.table_schema = 'public'"
        " AND c.column_name = 'org_id' AND t.table_type = 'BASE TABLE'")
    for table in tables:
        name = table["table_name"]
        left = await pool.fetchval(
            f'SELECT count(*) FROM "{name}" t WHERE org_id = $1 AND (t::text LIKE $2'
            " OR t::text LIKE '%Biscuit%' OR t::text LIKE '%wamid.%')", org.id, f"%{wa_id}%")
        assert left == 0, name
    # The organization's own WhatsApp number stays: it is not the user's.
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_numbers WHERE id = $1",
                               number_id) == 1
