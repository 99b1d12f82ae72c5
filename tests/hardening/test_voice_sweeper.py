"""The session sweeper: a call whose API replica is killed for good (SIGKILL: nothing runs its
clean-up) stops renewing its lease, and a surviving replica closes the session as `failed`
with the reason within `voice_lease_ttl_s + voice_sweep_every_s`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from voice_hostile import answered, dial, greeting_flow, limited_settings, publish, serve_voice

LEASE_TTL_S = 3.0
SWEEP_EVERY_S = 0.5
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def survivor(settings, app_pool) -> AsyncIterator[Any]:
    swept = limited_settings(settings, voice_lease_ttl_s=LEASE_TTL_S,
                             voice_sweep_every_s=SWEEP_EVERY_S)
    async with serve_voice(swept, pool=app_pool) as running:
        yield running


@pytest.fixture
async def doomed_replica(settings) -> AsyncIterator[tuple[Any, int]]:
    env = {**os.environ, "AICO_HOME": str(settings.home),
           "AICO_DATABASE_URL": settings.database_url or "", "AICO_MODELS": "inprocess",
           "AICO_LIMIT_VOICE_LEASE_TTL_S": str(LEASE_TTL_S), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("voice_replica.py")), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 180)).decode()
        assert line.startswith("PORT "), line
        yield proc, int(line.split()[1])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_call_whose_replica_dies_is_failed_by_the_sweeper(
        make_org, survivor, doomed_replica, pool):
    proc, port = doomed_replica
    org = await make_org()
    flow_id = await publish(org.client, greeting_flow())
    async with httpx.AsyncClient(base_url=survivor.base_http, timeout=30,
                                 headers={"Authorization": f"Bearer {org.token}"}) as api:
        r = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
        assert r.status_code == 201, r.text
        session_id = r.json()["id"]
        path = r.json()["voice"]["url"].split("/v1/", 1)[1]

        caller = await dial(f"ws://127.0.0.1:{port}/v1/{path}")  # the doomed replica's socket
        assert await answered(caller)
        await caller.next_event("agent_speech_ended")
        holder = await pool.fetchval("SELECT holder FROM voice_leases WHERE session_id = $1",
                                     session_id)
        assert holder is not None and holder.split(":")[1] == str(proc.pid)

        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        bound = LEASE_TTL_S + SWEEP_EVERY_S
        async with asyncio.timeout(bound + 30):  # generous for a loaded box; measured below
            while (await api.get(f"/v1/sessions/{session_id}")).json()["status"] != "failed":
                await asyncio.sleep(0.1)
        took = time.monotonic() - killed
        print(f"session failed {took:.1f} s after its replica was killed (bound {bound} s)")

    state = await pool.fetchval("SELECT state FROM sessions WHERE id = $1", session_id)
    assert state["ended_reason"].startswith("voice_host_lost")
    failed = await pool.fetch("SELECT payload FROM session_events WHERE session_id = $1"
                              " AND type = 'session.failed'", session_id)
    assert len(failed) == 1 and failed[0]["payload"]["reason"] == state["ended_reason"]
    # The sweep drops the lease right after failing the session.
    async with asyncio.timeout(30):
        while await pool.fetchval("SELECT count(*) FROM voice_leases WHERE session_id = $1",
                                  session_id):
            await asyncio.sleep(0.1)
