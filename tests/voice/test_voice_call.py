"""A caller phones a flow over the voice WebSocket with real audio: Piper speaks the caller's
lines in real time, Whisper hears them, the executor runs the flow, Piper answers. The test
asserts on the agent's own `transcript` events and on what was stored (the whole transcript),
with one coarse check on what Whisper hears of the agent."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID

from voice_api import publish_flow, start_voice_session, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import BYE, GREETING, HOURS, ORDER, REPROMPT, bakery_flow
from websockets.asyncio.client import connect


async def voice_session(api: Any, server: Any, document: dict[str, Any]) -> tuple[UUID, str]:
    return await start_voice_session(api, server, await publish_flow(api, document))


async def test_caller_is_greeted_and_the_flow_branches_on_what_they_said(
        api, voice_server, voices):
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    org_token = api.headers["Authorization"].split()[1]
    live_url = f"{voice_server.base_ws}/v1/sessions/{session_id}/live?token={org_token}"
    async with connect(live_url) as observer, CallClient(url) as call:
        assert json.loads(await observer.recv())["type"] == "hello"
        assert call.out_rate == 22050
        await call.wait_event("agent_speech_ended", timeout=60)
        assert agent_lines(call) == [GREETING]
        # One coarse check that the greeting is audio a person would understand.
        greeting = await voices.hear(call.agent_audio(), call.out_rate)
        assert "bakery" in greeting and "order" in greeting, greeting

        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_lines(call, after=spoke) == [HOURS]

        # A one-word reply of about half a second is a turn too.
        spoke = await call.say(await voices.caller("Order."))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_lines(call, after=spoke) == [ORDER]
        heard = user_lines(call)
        assert len(heard) == 2 and "hour" in heard[0].lower() and "order" in heard[1].lower()
        metrics = [e["turn"] for _, e in call.events if e.get("type") == "metrics"
                   and "turn" in e]
        assert len(metrics) == 2 and all(m["voice_to_voice_ms"] > 0 for m in metrics)

        seen: list[dict[str, Any]] = []
        while not any(e.get("role") == "user" for e in seen if e.get("type") == "transcript"):
            seen.append(json.loads(await asyncio.wait_for(observer.recv(), 10)))
        assert {"type": "transcript", "session_id": str(session_id), "role": "user",
                "text": heard[0], "final": True} in seen
    # The caller hung up: the session ended, its whole transcript and metrics are stored.
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", HOURS), ("user", heard[1]),
                                  ("assistant", ORDER)]
    stored = record["metrics"]
    assert len(stored["turns"]) == 2
    assert set(stored["turns"][0]) >= {"end_of_turn_ms", "stt_final_ms", "llm_ttft_ms",
                                       "tts_ttfb_ms", "voice_to_voice_ms"}
    assert stored["usage"]["stt"]["requests"] >= 2
    ended = [e["payload"] for e in await stored_events(api, session_id)
             if e["type"] == "session.ended"]
    assert ended == [{"reason": "hangup"}]


async def test_silence_gets_a_reprompt_and_goodbye_ends_the_call(api, voice_server, voices):
    session_id, url = await voice_session(api, voice_server, bakery_flow(no_input_s=1.5))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        t = time.monotonic()
        timer = await call.wait_event("timer", after=t, timeout=30)
        assert timer == {"type": "timer", "name": "no_input"}
        await call.wait_event("agent_speech_ended", after=t, timeout=60)
        assert agent_lines(call, after=t) == [REPROMPT]

        spoke = await call.say(await voices.caller("No thanks, bye."))
        end = await call.wait_event("end", after=spoke, timeout=60)
        assert end["reason"] == "caller_done"
        await asyncio.wait_for(call.closed.wait(), 10)
        assert call.close_code == 1000
        assert agent_lines(call, after=spoke) == [BYE]
        heard = user_lines(call)
        assert len(heard) == 1 and "bye" in heard[0].lower()
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("assistant", REPROMPT),
                                  ("user", heard[0]), ("assistant", BYE)]


async def test_bad_tokens_and_bad_starts_are_refused(api, voice_server):
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    forged = url.rsplit("token=", 1)[0] + "token=9999999999." + "0" * 64
    async with connect(forged) as ws:
        error = json.loads(await ws.recv())
        assert error["code"] == "unauthorized"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 12345}))
        assert json.loads(await ws.recv())["code"] == "bad_start"
    # Nothing started: no greeting was said, no event stored.
    assert transcript(await wait_status(api, session_id, "active")) == []
    assert await stored_events(api, session_id) == []
    other_id, _ = await voice_session(api, voice_server, bakery_flow())
    wrong = url.replace(str(session_id), str(other_id))
    async with connect(wrong) as ws:
        assert json.loads(await ws.recv())["code"] == "unauthorized"


async def test_no_input_counts_only_time_the_callers_line_is_live(api, voice_server):
    # A line that carries no frames at all (a socket that dropped and is coming back) is not a
    # silent caller: the re-prompt waits until frames flow again and then the whole timeout.
    _session_id, url = await voice_session(api, voice_server, bakery_flow(no_input_s=1.5))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        t = time.monotonic()
        await call.stall(4.0)
        back = time.monotonic()
        assert not call.has_event("timer", after=t)
        timer = await call.wait_event("timer", after=back, timeout=30)
        assert timer == {"type": "timer", "name": "no_input"}
