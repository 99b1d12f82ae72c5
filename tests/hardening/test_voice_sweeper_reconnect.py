"""The sweeper on Ray: a call's actor outlives the API replica that held its socket, so a lapsed
lease whose call an actor still carries is left for the caller's reconnect; once no actor carries
it, the same sweep closes the session as `voice_host_lost`."""

from __future__ import annotations

import asyncio
from typing import Any

from voice_hostile import greeting_flow, publish

from db import voice_leases as leases_db
from serve_apps.state import app_state
from serve_apps.voice_sweeper import HOST_LOST, sweep_voice_sessions


async def test_a_lapsed_lease_whose_call_actor_still_runs_is_left_for_a_reconnect(app, make_org, pool):
    """On Ray the call's actor outlives the replica that held its socket: while it still carries
    the call, the sweep keeps the session (a reconnect takes the lease over); once it does not,
    the same sweep closes the session as before."""
    # Only this test sweeps: the shared app's own sweeper would race it.
    sweeper = app_state(app).voice_sweeper
    if sweeper is not None:
        await sweeper.aclose()
    try:
        await _sweep_twice(make_org, pool)
    finally:
        if sweeper is not None:
            sweeper.start()


async def _sweep_twice(make_org: Any, pool: Any) -> None:
    org = await make_org()
    flow_id = await publish(org.client, greeting_flow())
    r = await org.client.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    session_id = r.json()["id"]
    await pool.execute("UPDATE sessions SET status = 'active' WHERE id = $1", session_id)
    outcome = await leases_db.acquire_voice_leases_row(
        pool, org_id=org.id, session_id=session_id, holder="gone-replica:1", ttl_s=0.05,
        max_per_org=10)
    assert outcome == "acquired"
    async with asyncio.timeout(30):  # the replica that held it is gone: nobody renews it
        while await pool.fetchval("SELECT count(*) FROM voice_leases WHERE session_id = $1"
                                  " AND expires_at > now()", session_id):
            await asyncio.sleep(0.05)

    asked: list[Any] = []

    async def carried(sid: Any) -> bool:
        asked.append(str(sid))
        return True

    assert await sweep_voice_sessions(pool, call_alive=carried) == []
    assert str(session_id) in asked
    assert (await org.client.get(f"/v1/sessions/{session_id}")).json()["status"] == "active"
    assert await pool.fetchval("SELECT holder FROM voice_leases WHERE session_id = $1",
                               session_id) == "gone-replica:1"

    async def hung_up(sid: Any) -> bool:
        return False

    failed = await sweep_voice_sessions(pool, call_alive=hung_up)
    assert [str(s) for s in failed] == [str(session_id)]
    state = await pool.fetchval("SELECT state FROM sessions WHERE id = $1", session_id)
    assert state["ended_reason"].startswith(HOST_LOST)
    assert not await pool.fetchval("SELECT count(*) FROM voice_leases WHERE session_id = $1",
                                   session_id)
