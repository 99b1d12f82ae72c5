"""A caller phones a flow through Twilio, end to end on loopback with real audio: the fake Twilio
signs the Voice webhook, AICO answers with TwiML, the fake opens the media stream named there
and speaks Piper's words as 8 kHz μ-law in real time; the agent answers in μ-law and Whisper
hears it. Keypad digits drive the flow, talking over the agent makes AICO send `clear`, the
hang-up and Twilio's status callback end the session with its whole transcript stored."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from phone_flows import GREETING, HOURS, PRESSED, SORRY


async def session_record(api: Any, session_id: Any) -> dict[str, Any]:
    response = await api.get(f"/v1/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_session(api: Any, session_id: Any, status: str,
                       timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record = await session_record(api, session_id)
        if record["status"] == status:
            return record
        assert time.monotonic() < deadline, f"session is {record['status']}, not {status}"
        await asyncio.sleep(0.05)


async def test_a_caller_phones_in_speaks_presses_a_key_and_talks_over_the_agent(
        twilio_org, voices, pool):
    org = await twilio_org()
    line = org.line()
    answer = await line.ring()
    assert answer.status_code == 200, answer.text
    await line.open_stream(answer.text)
    try:
        connected = time.monotonic()
        await line.wait_audio(after=connected)
        greeting = await voices.hear(line.agent_audio(after=connected), 8000)
        assert "bakery" in greeting, greeting

        spoke = await line.say(await voices.caller("What are your hours?"))
        await line.wait_audio(after=spoke)
        hours = await voices.hear(line.agent_audio(after=spoke), 8000)
        assert "open" in hours and any(w in hours for w in ("nine", "9")), hours

        pressed = await line.press("1")
        await line.wait_audio(after=pressed)
        heard = await voices.hear(line.agent_audio(after=pressed), 8000)
        assert "press" in heard, heard

        # The menu is long: the caller talks over it, and AICO tells Twilio to drop what it
        # still buffers for playback.
        asked = await line.say(await voices.caller("Tell me the menu."))
        menu_started = await line.wait_speaking(after=asked)
        while time.monotonic() - menu_started < 1.5:
            await asyncio.sleep(0.05)
        assert line.clears == []
        barged = time.monotonic()
        await line.say(await voices.caller("Stop, stop, I want something else please."))
        deadline = time.monotonic() + 30
        while not [t for t in line.clears if t > barged]:
            assert time.monotonic() < deadline, "no clear after the caller talked over the agent"
            await asyncio.sleep(0.05)
        cleared = next(t for t in line.clears if t > barged)
        # The flow answers the interruption (after the ≈120 ms of menu already on its way).
        await line.wait_audio(after=cleared + 0.3)
        sorry = await voices.hear(line.agent_audio(after=cleared + 0.3), 8000)
        assert "sorry" in sorry, sorry
        # The interrupted menu was not heard to its end.
        cut = await voices.hear(line.agent_audio(after=menu_started, before=cleared + 0.3), 8000)
        # (tiny.en hears "Our menu" as "arminy" at times, and "fresh bread" as "fresh spread":
        # any one of these words shows the menu's start was heard.)
        assert "lemon tart" not in cut and any(
            w in cut for w in ("menu", "bread", "apple", "pie")), cut
        assert line.receive_error is None
        # One mark after each utterance the agent finished, answered as played.
        assert [name for _, name in line.marks][:3] == ["agent-1", "agent-2", "agent-3"]
    finally:
        await line.hang_up()

    completed = await line.status("completed")
    assert completed.status_code == 204
    call = await pool.fetchrow("SELECT * FROM phone_calls WHERE call_ref = $1", line.call_sid)
    assert (call["org_id"], call["status"], call["direction"]) == (org.id, "completed",
                                                                   "inbound")
    record = await wait_session(org.api, call["session_id"], "ended")
    turns = [(t["role"], t["text"]) for t in record["transcript"]]
    assert turns[:5] == [("assistant", GREETING), ("user", turns[1][1]), ("assistant", HOURS),
                         ("user", "1"), ("assistant", PRESSED)], turns
    assert "hour" in turns[1][1].lower()
    assert ("assistant", SORRY) in turns[6:] and "menu" in turns[5][1].lower(), turns
    assert record["channel"] == "phone"
    assert record["variables"]["caller"] == line.remote
    assert record["variables"]["called"] == org.number
    assert len(record["metrics"]["turns"]) >= 2
    statuses = await pool.fetch("SELECT kind, detail FROM phone_call_events WHERE call_id = $1",
                                call["id"])
    assert [(s["kind"], s["detail"]["status"]) for s in statuses] == [("status", "completed")]
