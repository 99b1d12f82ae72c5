"""A call whose `VoiceSession` Ray actor is killed for good (no restart left): the replica gives
up reattaching after its timeout, the caller is told (`call_failed`, close 1011), and the
session is `failed` with the reason — not `active` forever."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from voice_hostile import (
    MODELS_MODE,
    answered,
    dial,
    greeting_flow,
    limited_settings,
    publish,
    serve_voice,
    voice_session,
    wait_for,
)

from actors.host import RayVoiceHost
from actors.pool import VoiceActorPool
from actors.transports.websocket import CloseCode

REATTACH_TIMEOUT_S = 3.0


class MortalPool(VoiceActorPool):
    """Actors without restarts, their models where the other voice tests' run."""

    def _new_actor(self) -> Any:
        from actors.voice_session import VoiceSession

        return VoiceSession.options(
            max_restarts=0, runtime_env={"env_vars": {"AICO_MODELS": MODELS_MODE}}).remote()


@pytest.fixture
async def ray_server(ray_cluster, settings, app_pool) -> AsyncIterator[tuple[Any, Any]]:
    actors = MortalPool(size=1, max_restarts=0)
    await actors.wait_warm(timeout_s=300)
    async with serve_voice(limited_settings(settings), pool=app_pool) as server:
        server.app.state.aico.voice_host = RayVoiceHost(
            actors, reattach_timeout_s=REATTACH_TIMEOUT_S)
        try:
            yield server, server.app.state.aico.voice_host
        finally:
            await actors.aclose()


async def test_a_call_whose_actor_dies_for_good_fails_its_session(api, ray_server, pool):
    import ray

    server, host = ray_server
    flow_id = await publish(api, greeting_flow())
    session_id, url = await voice_session(api, server, flow_id)
    caller = await dial(url)
    assert await answered(caller)
    await caller.next_event("agent_speech_ended", timeout=120)

    ray.kill(host.calls[str(session_id)].actor, no_restart=True)
    killed = time.monotonic()
    assert await caller.until_closed(timeout=REATTACH_TIMEOUT_S + 60) == CloseCode.INTERNAL
    assert "call_failed" in caller.errors()
    status = await wait_for(lambda: _failed(pool, session_id), timeout=30)
    print(f"session failed {time.monotonic() - killed:.1f} s after its actor was killed"
          f" (reattach timeout {REATTACH_TIMEOUT_S} s)")
    assert status["ended_reason"].startswith("host_failed")
    # The call's end releases the lease right after recording the failure.
    assert await wait_for(lambda: _lease_released(pool, session_id), timeout=30)
    events = await pool.fetch("SELECT type, payload FROM session_events WHERE session_id = $1"
                              " ORDER BY seq", session_id)
    assert [e["type"] for e in events].count("session.failed") == 1
    assert "session.ended" not in [e["type"] for e in events]


async def _failed(pool: Any, session_id: Any) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT status, state FROM sessions WHERE id = $1", session_id)
    return row["state"] if row["status"] == "failed" else None


async def _lease_released(pool: Any, session_id: Any) -> bool:
    return await pool.fetchval("SELECT count(*) FROM voice_leases WHERE session_id = $1",
                               session_id) == 0
