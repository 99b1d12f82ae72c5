"""Rate limits per organization and per session, counted in PostgreSQL so every API replica
shares them: past a limit the caller gets 429 with Retry-After and a message naming the limit,
and nothing is stored or run."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import asyncpg
import httpx
import pytest

from aico.settings import LimitSettings, Settings
from db.api_clients import insert_api_client, new_token
from db.organizations import insert_organization

ECHO = {
    "name": "Echo",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "hear", "type": "listen", "into": "said"},
              {"id": "echo", "type": "say", "text": "You said {{ said }}"}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "echo"},
              {"from": "echo", "to": "hear"}],
}


@pytest.fixture
async def replicas(settings: Settings, app_pool: asyncpg.Pool
                   ) -> AsyncIterator[Callable[..., list[httpx.AsyncClient]]]:
    """`replicas(token, n=2, **limits)`: n API apps (as n Serve replicas would be) with these
    limits over the same database, as the application role (row-level security holds), each
    with a client for `token`."""
    from serve_apps.api import create_app

    clients: list[httpx.AsyncClient] = []

    def make(token: str, *, n: int = 2, **limits: int) -> list[httpx.AsyncClient]:
        limited = settings.model_copy(update={"limits": LimitSettings(**limits)})
        made = []
        for _ in range(n):
            app = create_app(limited, pool=app_pool)
            made.append(httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://aico.test",
                headers={"Authorization": f"Bearer {token}"}, timeout=60))
        clients.extend(made)
        return made

    yield make
    for client in clients:
        await client.aclose()


async def _org(pool: asyncpg.Pool) -> tuple[UUID, str]:
    slug = "rl-" + secrets.token_hex(5)
    org = await insert_organization(pool, slug=slug, name=slug)
    token = new_token()
    await insert_api_client(pool, org_id=org["id"], name="test", token=token, role="admin")
    return org["id"], token


async def _away_from_the_minute_turn(pool: asyncpg.Pool) -> None:
    """Counting in one window: wait while the database clock is within 15 s of a new minute."""
    async def seconds_left() -> float:
        return float(await pool.fetchval("SELECT 60 - mod(extract(epoch FROM now()), 60)"))

    while await seconds_left() < 15:
        await asyncio.sleep(0.5)


async def _publish(client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/flows", json={"name": "Echo", "document": ECHO})
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    assert (await client.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    return flow_id


def assert_limited(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    body = response.json()
    assert body["error"] == "rate_limited" and body["limit"] == limit
    assert limit in body["message"] and body["retry_after_s"] == retry_after


async def test_sessions_per_minute_are_counted_per_organization_across_replicas(replicas, pool):
    org_id, token = await _org(pool)
    other_id, other_token = await _org(pool)
    first, second = replicas(token, sessions_per_minute_per_org=3)
    (other,) = replicas(other_token, n=1, sessions_per_minute_per_org=3)
    flow_id = await _publish(first)
    other_flow = await _publish(other)
    await _away_from_the_minute_turn(pool)

    for replica in (first, second, first):
        r = await replica.post(f"/v1/flows/{flow_id}/sessions", json={})
        assert r.status_code == 201, r.text
    refused = await second.post(f"/v1/flows/{flow_id}/sessions", json={})
    assert_limited(refused, "sessions_per_minute_per_org")
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org_id) == 3
    # A refusal does not use up the window further, and other organizations are not affected.
    assert await pool.fetchval(
        "SELECT max(count) FROM rate_limit_windows WHERE org_id = $1 AND bucket = 'sessions'",
        org_id) == 3
    assert (await other.post(f"/v1/flows/{other_flow}/sessions", json={})).status_code == 201
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", other_id) == 1


async def test_messages_per_minute_are_counted_per_session_and_per_organization(replicas, pool):
    org_id, token = await _org(pool)
    first, second = replicas(token, messages_per_minute_per_session=2,
                             messages_per_minute_per_org=3)
    flow_id = await _publish(first)
    a = (await first.post(f"/v1/flows/{flow_id}/sessions", json={})).json()["id"]
    b = (await first.post(f"/v1/flows/{flow_id}/sessions", json={})).json()["id"]
    await _away_from_the_minute_turn(pool)

    for replica, text in ((first, "one"), (second, "two")):
        r = await replica.post(f"/v1/sessions/{a}/messages", json={"text": text})
        assert r.status_code == 200, r.text
        assert [m["text"] for m in r.json()["messages"]] == [f"You said {text}"]
    assert_limited(await first.post(f"/v1/sessions/{a}/messages", json={"text": "three"}),
                   "messages_per_minute_per_session")
    # Another session of the organization may still speak, until the organization's limit.
    assert (await second.post(f"/v1/sessions/{b}/messages", json={"text": "hi"})).status_code == 200
    assert_limited(await second.post(f"/v1/sessions/{b}/messages", json={"text": "again"}),
                   "messages_per_minute_per_org")

    # Refused messages never reached the flow.
    turns = await pool.fetch(
        "SELECT session_id, text FROM transcript_turns WHERE org_id = $1 AND role = 'user'"
        " ORDER BY session_id, seq", org_id)
    said = {(str(t["session_id"]), t["text"]) for t in turns}
    assert said == {(a, "one"), (a, "two"), (b, "hi")}
