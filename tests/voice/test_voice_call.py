"""A caller phones a flow over the voice WebSocket with real audio: Piper speaks the caller's
lines in real time, Whisper hears them, the executor runs the flow, Piper answers, and the
test listens to the agent with Whisper."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID

from voice_call_client import CallClient
from voice_flows import bakery_flow, says_the_hours
from websockets.asyncio.client import connect

from db import session_metrics
from db import sessions as sessions_db


async def voice_session(api: Any, server: Any, document: dict[str, Any]) -> tuple[UUID, str]:
    r = await api.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 201, r.text
    flow_id = r.json()["id"]
    assert (await api.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    r = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["voice"]["url"].startswith("ws") and body["voice"]["token"]
    return UUID(body["id"]), server.ws_url(body["voice"])


async def test_caller_is_greeted_and_the_flow_branches_on_what_they_said(
        api, make_org, voice_server, voices, pool):
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    org_token = api.headers["Authorization"].split()[1]
    live_url = f"{voice_server.base_ws}/v1/sessions/{session_id}/live?token={org_token}"
    async with connect(live_url) as observer, CallClient(url) as call:
        assert json.loads(await observer.recv())["type"] == "hello"
        assert call.out_rate == 22050
        greeting_done = time.monotonic()
        await call.wait_event("agent_speech_ended", timeout=60)
        greeting = await voices.hear(call.agent_audio(), call.out_rate)
        assert "bakery" in greeting and "order" in greeting

        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        heard = await voices.hear(call.agent_audio(since=spoke), call.out_rate)
        assert says_the_hours(heard), heard

        # A one-word reply of about half a second is a turn too.
        spoke = await call.say(await voices.caller("Order."))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        heard = await voices.hear(call.agent_audio(since=spoke), call.out_rate)
        assert "like to order" in heard, heard
        user_lines = [e["text"].lower() for _, e in call.events
                      if e.get("type") == "transcript" and e.get("role") == "user"
                      and e.get("final")]
        assert any("hours" in t for t in user_lines) and any("order" in t for t in user_lines)
        metrics = [e["turn"] for _, e in call.events if e.get("type") == "metrics"
                   and "turn" in e]
        assert len(metrics) == 2 and all(m["voice_to_voice_ms"] > 0 for m in metrics)

        seen = []
        while not any(e.get("role") == "user" for e in seen if e.get("type") == "transcript"):
            seen.append(json.loads(await asyncio.wait_for(observer.recv(), 10)))
        del greeting_done
    # The caller hung up: the session ended, its transcript and metrics are stored.
    for _ in range(100):
        row = await sessions_db.get_session_brief(pool, session_id=session_id)
        if row["status"] == "ended":
            break
        await asyncio.sleep(0.05)
    assert row["status"] == "ended"
    turns = await pool.fetch("SELECT role, text FROM transcript_turns WHERE session_id = $1"
                             " ORDER BY seq", session_id)
    assert [t["role"] for t in turns][:2] == ["assistant", "user"]
    stored = await session_metrics.get_sessions_metrics(pool, session_id=session_id)
    assert len(stored["turns"]) == 2
    assert set(stored["turns"][0]) >= {"end_of_turn_ms", "stt_final_ms", "llm_ttft_ms",
                                       "tts_ttfb_ms", "voice_to_voice_ms"}
    assert stored["usage"]["stt"]["requests"] >= 2
    ended = await pool.fetchval("SELECT payload->>'reason' FROM session_events WHERE"
                                " session_id = $1 AND type = 'session.ended'", session_id)
    assert ended == "hangup"


async def test_silence_gets_a_reprompt_and_goodbye_ends_the_call(
        api, voice_server, voices, pool):
    session_id, url = await voice_session(api, voice_server, bakery_flow(no_input_s=1.5))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        t = time.monotonic()
        await call.wait_event("timer", after=t, timeout=30,
                              where=lambda e: e["name"] == "no_input")
        await call.wait_event("agent_speech_ended", after=t, timeout=60)
        assert "still there" in await voices.hear(call.agent_audio(since=t), call.out_rate)

        spoke = await call.say(await voices.caller("No thanks, bye."))
        end = await call.wait_event("end", after=spoke, timeout=60)
        assert end["reason"] == "caller_done"
        await asyncio.wait_for(call.closed.wait(), 10)
        assert "goodbye" in await voices.hear(call.agent_audio(since=spoke), call.out_rate)
    row = await sessions_db.get_session_brief(pool, session_id=session_id)
    assert row["status"] == "ended"


async def test_bad_tokens_and_bad_starts_are_refused(api, voice_server):
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    forged = url.rsplit("token=", 1)[0] + "token=9999999999." + "0" * 64
    async with connect(forged) as ws:
        error = json.loads(await ws.recv())
        assert error["code"] == "unauthorized"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 12345}))
        assert json.loads(await ws.recv())["code"] == "bad_start"
    other_id, _ = await voice_session(api, voice_server, bakery_flow())
    wrong = url.replace(str(session_id), str(other_id))
    async with connect(wrong) as ws:
        assert json.loads(await ws.recv())["code"] == "unauthorized"
