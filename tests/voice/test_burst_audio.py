"""A caller's turn that reaches the call in one burst is still a turn (issue 16's drill).

The caller's frames do not always arrive as they were spoken: a congested line, or a call actor
starved of CPU (the node drill's surviving node while the moved calls warm up) delivers seconds
of speech at once. How long the caller spoke is measured on the audio, so a whole sentence
that arrives in a few milliseconds is not dropped as `too_short`, and it is answered.

Real parts: Piper speaks the caller, Silero hears the speech, Whisper transcribes, the flow
answers; the burst is the client holding its frames back and then sending them back to back."""

from __future__ import annotations

import time

from voice_api import publish_flow, start_voice_session, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, HOURS, bakery_flow


async def test_a_question_that_arrives_in_one_burst_is_answered(api, voice_server, voices):
    flow_id = await publish_flow(api, bakery_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        question = await voices.caller("Could you tell me what your opening hours are today?")
        before = time.monotonic()
        spoke = await call.say_after_stall(question)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert not call.has_event("user_speech_ignored", after=before)
        assert agent_lines(call) == [GREETING, HOURS]
        assert "hours" in user_lines(call)[0].lower()
    record = await wait_status(api, session_id, "ended")
    assert transcript(record)[:3] == [("assistant", GREETING), ("user", user_lines(call)[0]),
                                      ("assistant", HOURS)]
    turns = [e for e in await stored_events(api, session_id) if e["type"] == "user.turn"]
    assert len(turns) == 1
