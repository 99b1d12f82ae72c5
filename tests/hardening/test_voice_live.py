"""Live observers: a dozen dashboard sockets do not starve the replica's database pool (one
LISTEN connection fans out to all of them), a session's observers are capped, and an event
over PostgreSQL's NOTIFY limit (8,000 bytes) reaches them in full."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from voice_hostile import (
    answered,
    dial,
    limited_settings,
    publish,
    serve_voice,
    voice_session,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from actors.transports.websocket import CloseCode

OBSERVERS_PER_SESSION = 8
LONG_TEXT = ("Ωμέγα. " * 300)[:2000].strip()


@pytest.fixture(scope="module")
async def voice_models() -> Any:
    from actors.call_providers import warm_default_providers

    return await warm_default_providers()


@pytest.fixture(scope="module")
async def server(settings, voice_models) -> AsyncIterator[Any]:
    # Its own pool of ten, as a replica has (`db_pool_max`), not the tests' shared one.
    small = limited_settings(settings, live_observers_per_session=OBSERVERS_PER_SESSION)
    small = small.model_copy(update={"db_pool_max": 10})
    async with serve_voice(small) as running:
        yield running


def long_say_flow() -> dict[str, Any]:
    return {"name": "long-say", "variables": {"voice_no_input_s": {"type": "number",
                                                                   "default": 600}},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "say", "type": "say", "text": LONG_TEXT},
                      {"id": "listen", "type": "listen"}],
            "edges": [{"from": "start", "to": "say"}, {"from": "say", "to": "listen"},
                      {"from": "listen", "to": "listen"}]}


async def observe(server: Any, session_id: Any, token: str) -> Any:
    ws = await connect(f"{server.base_ws}/v1/sessions/{session_id}/live?token={token}")
    hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
    return ws, hello


async def test_twelve_observers_leave_the_pool_to_other_requests(make_org, server, pool):
    org = await make_org()
    flow_id = await publish(org.client, long_say_flow())
    first, _ = await voice_session(org.client, server, flow_id)
    second, _ = await voice_session(org.client, server, flow_id)

    observers = [await observe(server, first, org.token) for _ in range(OBSERVERS_PER_SESSION)]
    observers += [await observe(server, second, org.token) for _ in range(4)]
    assert all(hello["type"] == "hello" for _, hello in observers)

    # One more on the first session is over its cap.
    refused = await connect(f"{server.base_ws}/v1/sessions/{first}/live?token={org.token}")
    error = json.loads(await refused.recv())
    assert error["code"] == "too_many_observers"
    try:
        await refused.recv()
    except ConnectionClosed:
        pass
    assert refused.close_code == CloseCode.TOO_MANY

    # Twenty requests at once on the same replica all answer (a hang here fails the test).
    async with httpx.AsyncClient(base_url=server.base_http, timeout=30,
                                 headers={"Authorization": f"Bearer {org.token}"}) as direct:
        async with asyncio.timeout(60):
            answers = await asyncio.gather(*(direct.get(f"/v1/sessions/{first}")
                                             for _ in range(20)))
    assert [r.status_code for r in answers] == [200] * 20
    listening = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"aico_live\"'")
    assert listening == 1

    for ws, _ in observers:
        await ws.close()


async def test_a_long_non_ascii_event_reaches_observers_in_full(make_org, server, pool):
    org = await make_org()
    flow_id = await publish(org.client, long_say_flow())
    session_id, url = await voice_session(org.client, server, flow_id)
    observer, hello = await observe(server, session_id, org.token)
    assert hello["status"] == "active"
    assert len(json.dumps({"text": LONG_TEXT}).encode()) > 8000  # over NOTIFY's limit

    caller = await dial(url)
    assert await answered(caller)
    async with asyncio.timeout(60):
        while True:
            event = json.loads(await observer.recv())
            if event.get("type") == "transcript" and event.get("role") == "agent":
                break
    assert event["text"] == LONG_TEXT
    assert event["session_id"] == str(session_id)
    stored = await pool.fetch("SELECT payload FROM live_events WHERE session_id = $1", session_id)
    assert [row["payload"]["text"] for row in stored] == [LONG_TEXT]

    await caller.ws.send(json.dumps({"type": "hangup"}))
    await caller.until_closed()
    async with asyncio.timeout(60):
        while event.get("type") != "end":
            event = json.loads(await observer.recv())
    await observer.close()
