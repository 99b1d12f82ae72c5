"""Hostile callers on the voice WebSocket: one URL opened five times, a token reused, an
organization past its cap of concurrent calls, a flood of dtmf frames, an 8 MiB text frame, and
audio pushed faster than real time. Each is refused with its close code, and nothing of it is
stored or started."""

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
    greeting_flow,
    limited_settings,
    publish,
    serve_voice,
    session_events,
    voice_session,
    wait_for,
)

from actors.transports.websocket import CloseCode

CALLS_PER_ORG = 2
CONTROL_PER_S = 10.0
CONTROL_BURST = 20


@pytest.fixture(scope="module")
async def voice_models() -> Any:
    from actors.call_providers import warm_default_providers

    return await warm_default_providers()


@pytest.fixture(scope="module")
async def server(settings, app_pool, voice_models) -> AsyncIterator[Any]:
    capped = limited_settings(settings, voice_calls_per_org=CALLS_PER_ORG,
                              voice_control_per_s=CONTROL_PER_S,
                              voice_control_burst=CONTROL_BURST)
    async with serve_voice(capped, pool=app_pool) as running:
        yield running


async def lease_holders(pool: Any, session_id: Any) -> list[str]:
    return [r["holder"] for r in await pool.fetch(
        "SELECT holder FROM voice_leases WHERE session_id = $1", session_id)]


async def test_one_voice_url_opened_five_times_carries_one_call(api, server, pool):
    flow_id = await publish(api, greeting_flow())
    session_id, url = await voice_session(api, server, flow_id)

    callers = await asyncio.gather(*(dial(url) for _ in range(5)))
    outcomes = await asyncio.gather(*(answered(c) for c in callers))
    assert outcomes.count(True) == 1, [c.events for c in callers]
    live = callers[outcomes.index(True)]
    refused = [c for c, ok in zip(callers, outcomes, strict=True) if not ok]
    for caller in refused:
        assert caller.close_code == CloseCode.UNAUTHORIZED
        assert caller.errors() == ["token_used"]
    await live.next_event("agent_speech_ended")

    # A fresh token while the call lives: the lease is held, so this socket is refused too.
    r = await api.post(f"/v1/sessions/{session_id}/voice-token")
    assert r.status_code == 200, r.text
    second = await dial(server.ws_url(r.json()))
    assert not await answered(second)
    assert second.close_code == CloseCode.BUSY and second.errors() == ["call_in_progress"]

    events = await session_events(pool, session_id)
    assert [e["type"] for e in events].count("session.started") == 1  # one pipeline ran
    assert len(await lease_holders(pool, session_id)) == 1

    await live.ws.send(json.dumps({"type": "hangup"}))
    await live.until_closed()
    await wait_for(lambda: _status_is(pool, session_id, "ended"), timeout=30)
    await wait_for(lambda: _no_lease(pool, session_id), timeout=10)


async def test_a_token_is_spent_by_its_first_attach_even_a_failed_one(api, server, pool):
    flow_id = await publish(api, greeting_flow())
    session_id, url = await voice_session(api, server, flow_id)
    bad = await dial(url, start=False)
    await bad.ws.send(json.dumps({"type": "hello"}))
    await bad.until_closed()
    assert bad.errors() == ["bad_start"]

    again = await dial(url)
    assert not await answered(again)
    assert again.close_code == CloseCode.UNAUTHORIZED and again.errors() == ["token_used"]
    # Nothing started: no event, the session waits for a caller with a fresh token.
    assert await session_events(pool, session_id) == []
    assert await _status_is(pool, session_id, "active")
    # The failed attach lets its lease go (just after its socket closed).
    await wait_for(lambda: _no_lease(pool, session_id), timeout=10)
    assert await session_events(pool, session_id) == []


async def test_an_organization_past_its_concurrent_call_cap_is_refused(make_org, server, pool):
    org = await make_org()
    flow_id = await publish(org.client, greeting_flow())
    sessions = [await voice_session(org.client, server, flow_id) for _ in range(3)]
    calls = [await dial(url) for _, url in sessions[:CALLS_PER_ORG]]
    assert all([await answered(c) for c in calls])

    over = await dial(sessions[2][1])
    assert not await answered(over)
    assert over.close_code == CloseCode.TOO_MANY and over.errors() == ["too_many_calls"]
    assert await session_events(pool, sessions[2][0]) == []

    # Through this server: its settings hold the cap.
    async with httpx.AsyncClient(base_url=server.base_http, timeout=30,
                                 headers={"Authorization": f"Bearer {org.token}"}) as direct:
        r = await direct.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too_many_calls" and "voice_calls_per_org" in r.json()["message"]
    stored = await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id)
    assert stored == 3

    # Another organization is not affected.
    other = await make_org()
    other_flow = await publish(other.client, greeting_flow())
    _, other_url = await voice_session(other.client, server, other_flow)
    other_call = await dial(other_url)
    assert await answered(other_call)

    for caller in (*calls, other_call):
        await caller.ws.close()
    # A call that ended frees its place.
    await wait_for(lambda: _live_leases(pool, org.id, 0), timeout=30)
    async with httpx.AsyncClient(base_url=server.base_http, timeout=30,
                                 headers={"Authorization": f"Bearer {org.token}"}) as direct:
        r = await direct.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text


async def test_two_thousand_dtmf_frames_become_a_bounded_number_of_steps(api, server, pool):
    flow_id = await publish(api, greeting_flow())
    session_id, url = await voice_session(api, server, flow_id)
    caller = await dial(url)
    assert await answered(caller)
    await caller.next_event("agent_speech_ended")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await flood(caller, 2000, digit="5")
    # A marker digit once the bucket lets one through again: steps run in order, so when the
    # marker is stored every digit let through before it is stored too.
    async with asyncio.timeout(30):
        while not any(e.get("digit") == "9" for e in caller.events if e.get("type") == "dtmf"):
            await caller.ws.send(json.dumps({"type": "dtmf", "digit": "9"}))
            await caller.read_for(0.3)
    elapsed = loop.time() - started
    digits = await wait_for(lambda: _stored_digits(pool, session_id, until="9"), timeout=30)

    bound = CONTROL_BURST + CONTROL_PER_S * elapsed
    assert 1 <= digits.count("5") <= bound, (len(digits), elapsed)
    assert "rate_limited" in caller.errors()
    assert caller.errors().count("rate_limited") <= 2 + elapsed  # notices are throttled too
    assert caller.close_code is None  # refused frames, the call goes on

    # A caller that keeps flooding is disconnected.
    await flood(caller, 2000 + 100, digit="5")
    assert await caller.until_closed() == CloseCode.POLICY
    await wait_for(lambda: _status_is(pool, session_id, "ended"), timeout=30)
    ended = [e for e in await session_events(pool, session_id) if e["type"] == "session.ended"]
    assert ended[0]["payload"]["reason"] == "rate_limited"


async def flood(caller: Any, n: int, *, digit: str) -> None:
    frame = json.dumps({"type": "dtmf", "digit": digit})
    for _ in range(n):
        try:
            await caller.ws.send(frame)
        except Exception:  # noqa: BLE001 - the server closed the socket mid-flood
            return


async def _stored_digits(pool: Any, session_id: Any, *, until: str) -> list[str] | None:
    digits = [e["payload"].get("dtmf") for e in await session_events(pool, session_id)
              if e["type"] == "user.turn" and e["payload"].get("dtmf")]
    return digits if until in digits else None


async def test_an_8_mib_text_frame_closes_the_call_and_nothing_of_it_is_stored(
        api, server, pool):
    flow_id = await publish(api, greeting_flow())
    session_id, url = await voice_session(api, server, flow_id)
    caller = await dial(url)
    assert await answered(caller)
    marker = "x" * (8 * 1024 * 1024)
    await caller.ws.send(json.dumps({"type": "dtmf", "digit": "7", "pad": marker}))
    assert await caller.until_closed() == CloseCode.TOO_BIG
    assert "frame_too_large" in caller.errors()

    await wait_for(lambda: _status_is(pool, session_id, "ended"), timeout=30)
    events = await session_events(pool, session_id)
    assert not any(e["type"] == "user.turn" for e in events)
    assert all(len(json.dumps(e["payload"])) < 10_000 for e in events)
    assert [e["payload"].get("reason") for e in events
            if e["type"] == "session.ended"] == ["frame_too_large"]


async def test_a_binary_frame_over_the_limit_and_audio_faster_than_real_time_are_refused(
        api, server, pool):
    flow_id = await publish(api, greeting_flow())
    _, url = await voice_session(api, server, flow_id)
    caller = await dial(url)
    assert await answered(caller)
    await caller.ws.send(b"\0" * (1024 * 1024))
    assert await caller.until_closed() == CloseCode.TOO_BIG
    assert "frame_too_large" in caller.errors()

    session_id, url = await voice_session(api, server, flow_id)
    caller = await dial(url)
    assert await answered(caller)
    # Ten seconds of audio at once (in 20 ms frames): over real time plus the slack.
    frame = b"\0" * 640
    for _ in range(500):
        try:
            await caller.ws.send(frame)
        except Exception:  # noqa: BLE001 - closed mid-burst
            break
    assert await caller.until_closed() == CloseCode.POLICY
    assert "audio_too_fast" in caller.errors()
    await wait_for(lambda: _status_is(pool, session_id, "ended"), timeout=30)


async def _status_is(pool: Any, session_id: Any, status: str) -> bool:
    return await pool.fetchval("SELECT status FROM sessions WHERE id = $1", session_id) == status


async def _no_lease(pool: Any, session_id: Any) -> bool:
    return not await pool.fetchval("SELECT 1 FROM voice_leases WHERE session_id = $1", session_id)


async def _live_leases(pool: Any, org_id: Any, n: int) -> bool:
    count = await pool.fetchval(
        "SELECT count(*) FROM voice_leases WHERE org_id = $1 AND expires_at > now()", org_id)
    return count == n
