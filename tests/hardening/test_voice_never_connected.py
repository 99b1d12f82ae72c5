"""A voice session whose caller never connects: the page that asked for it was closed, or the
client gave up. No socket means no lease, so only the sweep's never-connected rule closes it:
once its voice token has expired (plus a margin), the session is ended with the reason
`never_connected` and a `session.ended` event, as a hang-up would be. A session whose caller
did connect, left alone for as long, is untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from voice_hostile import answered, dial, greeting_flow, limited_settings, publish, serve_voice

from serve_apps.voice_sweeper import (
    NEVER_CONNECTED,
    NEVER_CONNECTED_MARGIN_S,
    sweep_voice_sessions,
)


@pytest.fixture(scope="module")
async def voice_api(settings, app_pool) -> AsyncIterator[Any]:
    async with serve_voice(limited_settings(settings), pool=app_pool) as running:
        yield running


async def _voice_session(org: Any, flow_id: str) -> tuple[str, dict[str, Any]]:
    r = await org.client.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["voice"]


async def test_a_voice_session_nobody_connects_to_is_ended_once_its_token_expires(
        make_org, voice_api, pool, app_pool, settings):
    org = await make_org()
    flow_id = await publish(org.client, greeting_flow())
    abandoned, _ = await _voice_session(org, flow_id)
    connected, voice = await _voice_session(org, flow_id)

    caller = await dial(voice_api.ws_url(voice))
    try:
        assert await answered(caller)
        await caller.next_event("agent_speech_ended")

        # Both sessions were handed out longer ago than their token lives, plus the margin:
        # as if the first caller's page had been left open (and the second caller talked on).
        waited_s = settings.voice.token_ttl_s + NEVER_CONNECTED_MARGIN_S + 5
        await pool.execute(
            "UPDATE sessions SET created_at = created_at - make_interval(secs => $2)"
            " WHERE id = ANY($1::uuid[])", [abandoned, connected], float(waited_s))
        await sweep_voice_sessions(app_pool, settings=settings)  # what every replica runs

        # What the dashboard shows: the abandoned session ended, with the reason.
        r = await org.client.get(f"/v1/sessions/{abandoned}")
        assert r.status_code == 200 and r.json()["status"] == "ended", r.text
        r = await org.client.get(f"/v1/sessions/{abandoned}/events")
        assert r.status_code == 200, r.text
        ended = [e for e in r.json()["items"] if e["type"] == "session.ended"]
        assert [e["payload"]["reason"] for e in ended] == [NEVER_CONNECTED]
        # What was stored: one session.ended event, and nothing of a call (no lease).
        stored = await pool.fetch("SELECT payload FROM session_events WHERE session_id = $1"
                                  " AND type = 'session.ended'", abandoned)
        assert [row["payload"]["reason"] for row in stored] == [NEVER_CONNECTED]
        assert await pool.fetchval("SELECT ended_at IS NOT NULL FROM sessions WHERE id = $1",
                                   abandoned)

        # The caller who connected is still on the call: the session is live, nothing ended it.
        r = await org.client.get(f"/v1/sessions/{connected}")
        assert r.json()["status"] in ("active", "waiting"), r.text
        assert not await pool.fetchval("SELECT count(*) FROM session_events WHERE session_id = $1"
                                       " AND type IN ('session.ended', 'session.failed')",
                                       connected)
        assert caller.close_code is None
    finally:
        await caller.ws.close()

    # A second sweep changes nothing for the ended session (one session.ended event).
    await sweep_voice_sessions(app_pool, settings=settings)
    assert await pool.fetchval("SELECT count(*) FROM session_events WHERE session_id = $1"
                               " AND type = 'session.ended'", abandoned) == 1
