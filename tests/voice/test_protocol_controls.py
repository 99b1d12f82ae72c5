"""The call controls docs/voice-protocol.md promises, through the real voice WebSocket and the
real pipeline: a `dtmf` digit reaches the flow as a turn and is echoed; `hangup` ends the call;
a flow's `transfer` reaches the caller; the `max_duration` timer fires, and the server hangs up
when the flow does not."""

from __future__ import annotations

import asyncio
import json
import time

from voice_api import publish_flow, start_voice_session, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines
from voice_flows import (
    CONNECTING,
    HOURS,
    KEYPAD_GREETING,
    SHORT_GREETING,
    STILL_HERE,
    TIME_UP,
    TRANSFER_TO,
    keypad_flow,
    timed_flow,
)
from websockets.asyncio.client import connect


async def test_a_dtmf_digit_is_echoed_and_the_flow_branches_on_it(api, voice_server):
    flow_id = await publish_flow(api, keypad_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "1"})
        echo = await call.wait_event("dtmf", after=pressed, timeout=10)
        assert echo == {"type": "dtmf", "digit": "1"}
        await call.wait_event("agent_speech_ended", after=pressed, timeout=60)
        assert agent_lines(call) == [KEYPAD_GREETING, HOURS]
        # A digit is not speech: no caller transcript, no speech event.
        assert not call.has_event("user_speech_started")
        assert not any(e.get("role") == "user" for _, e in call.events
                       if e.get("type") == "transcript")
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", KEYPAD_GREETING), ("user", "1"),
                                  ("assistant", HOURS)]
    turns = [e for e in await stored_events(api, session_id) if e["type"] == "user.turn"]
    assert [(t["payload"]["text"], t["payload"].get("dtmf")) for t in turns] == [("1", "1")]


async def test_hangup_ends_the_call_and_the_session(api, voice_server):
    flow_id = await publish_flow(api, keypad_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        await call.send_event({"type": "hangup"})
        # The server closes the socket, normally, without waiting for the client.
        await asyncio.wait_for(call.closed.wait(), 30)
        assert call.close_code == 1000
        assert not call.has_event("end")  # `end` is the flow ending the call, not the caller
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", KEYPAD_GREETING)]
    ended = [e["payload"] for e in await stored_events(api, session_id)
             if e["type"] == "session.ended"]
    assert ended == [{"reason": "hangup"}]


async def test_a_cold_transfer_reaches_the_caller_and_ends_the_call(api, voice_server):
    flow_id = await publish_flow(api, keypad_flow(transfer_mode="cold"))
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    token = api.headers["Authorization"].split()[1]
    live = f"{voice_server.base_ws}/v1/sessions/{session_id}/live?token={token}"
    async with connect(live) as observer, CallClient(url) as call:
        assert json.loads(await observer.recv())["type"] == "hello"
        await call.wait_event("agent_speech_ended", timeout=60)
        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "9"})
        transfer = await call.wait_event("transfer", after=pressed, timeout=60)
        assert transfer == {"type": "transfer", "to": TRANSFER_TO, "mode": "cold"}
        end = await call.wait_event("end", after=pressed, timeout=60)
        assert end == {"type": "end", "reason": "transferred"}
        await asyncio.wait_for(call.closed.wait(), 30)
        assert call.close_code == 1000
        # The last words were played before the call ended.
        assert agent_lines(call) == [KEYPAD_GREETING, CONNECTING]
        last_audio = max(t for t, _ in call.audio)
        assert last_audio < next(t for t, e in call.events if e is end)
        # The dashboard's observer saw the digit, the transfer and the end (then the close).
        seen = []
        async with asyncio.timeout(30):
            async for message in observer:
                event = json.loads(message)
                assert event["session_id"] == str(session_id)
                if event["type"] in ("dtmf", "transfer", "end"):
                    seen.append({k: v for k, v in event.items() if k != "session_id"})
                if event["type"] == "end":
                    break
        assert seen == [{"type": "dtmf", "digit": "9"}, transfer, end]
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", KEYPAD_GREETING), ("user", "9"),
                                  ("assistant", CONNECTING)]
    events = await stored_events(api, session_id)
    assert [e["payload"] for e in events if e["type"] == "transfer"] == [
        {"to": TRANSFER_TO, "mode": "cold"}]


async def test_a_caller_gone_while_the_flows_last_words_play_leaves_the_flows_end(
        api, voice_server):
    # A phone network stops the stream as soon as it moves the call: the hang-up arrives while
    # the flow's end is committed and its last words still play. It is not a second ending.
    flow_id = await publish_flow(api, keypad_flow(transfer_mode="cold"))
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "9"})
        await call.wait_event("transfer", after=pressed, timeout=60)
        assert not call.has_event("end")  # the last words are still playing
        await call.send_event({"type": "hangup"})
        await asyncio.wait_for(call.closed.wait(), 30)
    await wait_status(api, session_id, "ended")
    events = await stored_events(api, session_id)
    assert not [e for e in events if e["type"] == "session.ended"]
    assert [(e["type"], e["payload"]) for e in events][-2:] == [
        ("transfer", {"to": TRANSFER_TO, "mode": "cold"}), ("end", {"reason": "transferred"})]


async def test_a_warm_transfer_reaches_the_caller_and_the_flow_goes_on(api, voice_server):
    flow_id = await publish_flow(api, keypad_flow(transfer_mode="warm"))
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "9"})
        transfer = await call.wait_event("transfer", after=pressed, timeout=60)
        assert transfer == {"type": "transfer", "to": TRANSFER_TO, "mode": "warm"}
        await call.wait_event("agent_speech_ended", after=pressed, timeout=60)
        # The flow listens again after a warm transfer: a digit still works.
        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "1"})
        await call.wait_event("agent_speech_ended", after=pressed, timeout=60)
        assert not call.has_event("end")
        assert agent_lines(call) == [KEYPAD_GREETING, CONNECTING, HOURS]
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", KEYPAD_GREETING), ("user", "9"),
                                  ("assistant", CONNECTING), ("user", "1"),
                                  ("assistant", HOURS)]


async def test_max_duration_fires_and_the_flow_ends_the_call(api, voice_server):
    flow_id = await publish_flow(api, timed_flow(max_duration_s=5, flow_ends_it=True))
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        timer = await call.wait_event("timer", timeout=60)
        assert timer == {"type": "timer", "name": "max_duration"}
        end = await call.wait_event("end", timeout=60)
        assert end == {"type": "end", "reason": "time_up"}
        await asyncio.wait_for(call.closed.wait(), 30)
        assert call.close_code == 1000
        assert agent_lines(call) == [SHORT_GREETING, TIME_UP]
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", SHORT_GREETING), ("assistant", TIME_UP)]
    events = await stored_events(api, session_id)
    assert [e["payload"]["name"] for e in events if e["type"] == "timer.fired"] == [
        "max_duration"]
    assert [e["payload"]["reason"] for e in events if e["type"] == "end"] == ["time_up"]


async def test_max_duration_hangs_up_when_the_flow_does_not(api, voice_server):
    flow_id = await publish_flow(api, timed_flow(max_duration_s=5, flow_ends_it=False))
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("timer", timeout=60, where=lambda e: e["name"] == "max_duration")
        fired = next(t for t, e in call.events if e.get("type") == "timer")
        end = await call.wait_event("end", timeout=60)
        assert end == {"type": "end", "reason": "max_duration"}
        ended_at = next(t for t, e in call.events if e is end)
        assert ended_at - fired >= 4.5  # the flow had its 5 s to end the call itself
        await asyncio.wait_for(call.closed.wait(), 30)
        assert call.close_code == 1000
        assert agent_lines(call) == [SHORT_GREETING, STILL_HERE]
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", SHORT_GREETING), ("assistant", STILL_HERE)]
    ended = [e["payload"] for e in await stored_events(api, session_id)
             if e["type"] == "session.ended"]
    assert ended == [{"reason": "max_duration"}]
