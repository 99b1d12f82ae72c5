"""Idempotent HTTP triggers: an integration retries `POST /v1/flows/{id}/sessions` and
`POST /v1/sessions/{id}/messages` with an `Idempotency-Key`; the work runs once, every retry
sees the first response, and a key reused for another request is refused."""

from __future__ import annotations

import asyncio

import httpx
from integration_flows import ECHO, publish_echo


async def test_five_concurrent_retries_with_one_key_start_one_session(make_org, pool):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    headers = {"Idempotency-Key": "order-1234"}
    body = {"variables": {"order": 1234}}
    replies = await asyncio.gather(*(
        org.client.post(f"/v1/flows/{flow_id}/sessions", json=body, headers=headers)
        for _ in range(5)))
    assert [r.status_code for r in replies] == [201] * 5, [r.text for r in replies]
    assert len({r.json()["id"] for r in replies}) == 1
    assert all(r.json() == replies[0].json() for r in replies)
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in replies) == [""] + ["true"] * 4
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1

    # The same key with another body is refused, naming the header; nothing new is stored.
    other = await org.client.post(f"/v1/flows/{flow_id}/sessions", json={}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["message"]
    # A new key is a new session.
    fresh = await org.client.post(f"/v1/flows/{flow_id}/sessions", json=body,
                                  headers={"Idempotency-Key": "order-1235"})
    assert fresh.status_code == 201 and fresh.json()["id"] != replies[0].json()["id"]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 2

    # After the key's lifetime (24 h, moved in the database) the key starts a session again.
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                       " WHERE org_id = $1 AND key = 'order-1234'", org.id)
    late = await org.client.post(f"/v1/flows/{flow_id}/sessions", json=body, headers=headers)
    assert late.status_code == 201 and late.json()["id"] != replies[0].json()["id"]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 3


async def test_a_retried_message_is_applied_once_and_answered_the_same(make_org, pool):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    session_id = (await org.client.post(f"/v1/flows/{flow_id}/sessions", json={})).json()["id"]
    url = f"/v1/sessions/{session_id}/messages"
    first = await org.client.post(url, json={"text": "hello"}, headers={"Idempotency-Key": "m1"})
    again = await org.client.post(url, json={"text": "hello"}, headers={"Idempotency-Key": "m1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.json()["messages"][0]["text"] == "You said hello"
    assert again.headers["Idempotent-Replayed"] == "true"
    turns = await pool.fetchval("SELECT count(*) FROM session_events WHERE session_id = $1"
                                " AND type = 'user.turn'", session_id)
    assert turns == 1
    streamed = await org.client.post(f"{url}?stream=true", json={"text": "hi"},
                                     headers={"Idempotency-Key": "m2"})
    assert streamed.status_code == 422 and "stream" in streamed.json()["message"]
    # Another organization's identical key is its own.
    other = await make_org()
    assert (await other.client.post(url, json={"text": "hello"},
                                    headers={"Idempotency-Key": "m1"})).status_code == 404


async def test_a_failed_request_releases_its_key_for_the_fixed_retry(make_org, pool):
    org = await make_org()
    created = await org.client.post("/v1/flows", json={"name": "Later", "document": ECHO})
    flow_id = created.json()["id"]
    headers = {"Idempotency-Key": "start-later"}
    # Nothing published yet: 404, and the key is not spent on the failure.
    early = await org.client.post(f"/v1/flows/{flow_id}/sessions", json={}, headers=headers)
    assert early.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE org_id = $1",
                               org.id) == 0
    assert (await org.client.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    fixed = await org.client.post(f"/v1/flows/{flow_id}/sessions", json={}, headers=headers)
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1


async def test_keyed_requests_in_flight_do_not_starve_a_small_pool(make_org, settings):
    """Many keyed triggers at once on a replica with a small pool all complete: a claim does
    not hold a connection while its request runs."""
    from db.pool import create_app_pool
    from serve_apps.api import create_app

    org = await make_org()
    flow_id = await publish_echo(org.client)
    small = await create_app_pool(settings, min_size=1, max_size=3)
    try:
        async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(settings, pool=small)),
                base_url="http://aico.test",
                headers={"Authorization": f"Bearer {org.token}"}) as client:
            replies = await asyncio.wait_for(asyncio.gather(*(
                client.post(f"/v1/flows/{flow_id}/sessions", json={},
                            headers={"Idempotency-Key": f"burst-{i}"}) for i in range(8))),
                timeout=120)
        assert [r.status_code for r in replies] == [201] * 8
        assert len({r.json()["id"] for r in replies}) == 8
    finally:
        await small.close()
