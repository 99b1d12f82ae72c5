"""What the protocol promises about the caller's speech, with real audio (Piper speaks the
caller's lines, Whisper hears them): speech shorter than `min_speech_s` is ignored as
`too_short`; a caller at 8 kHz is understood; caller speech over a non-interruptible `say`
does not cut it. Assertions are on the agent's own `transcript` events and on what was stored,
with one coarse check each on what Whisper heard."""

from __future__ import annotations

import time

from voice_api import publish_flow, start_voice_session, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, HOURS, MENU, SORRY, bakery_flow

from actors.audio import resample_pcm16


async def test_speech_shorter_than_min_speech_is_ignored_as_too_short(
        api, voice_server, voices):
    flow_id = await publish_flow(api, bakery_flow(min_speech_s=1.0))
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        line = await voices.caller("Hours.")
        before = time.monotonic()
        await call.say(line)
        ignored = await call.wait_event("user_speech_ignored", after=before, timeout=30)
        assert ignored == {"type": "user_speech_ignored", "reason": "too_short"}
        assert user_lines(call) == [] and agent_lines(call) == [GREETING]

        # A longer line in the same call is a turn: the filter is the length, not the words.
        spoke = await call.say(await voices.caller(
            "Could you tell me what your opening hours are today, please?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_lines(call) == [GREETING, HOURS]
        assert len(user_lines(call)) == 1 and "hours" in user_lines(call)[0].lower()
    record = await wait_status(api, session_id, "ended")
    assert [role for role, _ in transcript(record)] == ["assistant", "user", "assistant"]
    assert transcript(record)[2] == ("assistant", HOURS)
    turns = [e for e in await stored_events(api, session_id) if e["type"] == "user.turn"]
    assert len(turns) == 1  # the short one reached nothing


async def test_a_caller_at_8khz_is_understood(api, voice_server, voices):
    flow_id = await publish_flow(api, bakery_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url, sample_rate=8000) as call:
        assert call.out_rate == 22050  # the agent's audio keeps the voice's own rate
        await call.wait_event("agent_speech_ended", timeout=60)
        line = resample_pcm16(await voices.caller("What are your hours?"), 16000, 8000)
        spoke = await call.say(line)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_lines(call) == [GREETING, HOURS]
        heard = user_lines(call)
        assert len(heard) == 1 and "hour" in heard[0].lower(), heard  # coarse: Whisper's words
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", HOURS)]


async def test_caller_speech_over_a_non_interruptible_say_does_not_cut_it(
        api, voice_server, voices):
    flow = bakery_flow(menu_interruptible=False)
    # The caller's "Stop, stop. Wait a moment, please." is one turn by the silence rule;
    # whether "Stop, stop." alone is a finished turn is the end-of-turn model's call
    # (tests/voice/test_end_of_turn.py), not what this test is about.
    flow["variables"]["voice_end_of_turn_model"] = {"type": "boolean", "default": False}
    flow_id = await publish_flow(api, flow)
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    menu_pcm = b"".join([f.pcm16 async for f in voices.tts.synthesize(MENU)])
    menu_s = len(menu_pcm) / 2 / voices.tts.sample_rate
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(await voices.caller("The menu, please."))
        started = await call.wait_event("agent_speech_started", after=spoke, timeout=60)
        t_started = next(t for t, e in call.events if e is started)
        # Well over the barge-in threshold (0.6 s) of speech, while the menu plays.
        over = await call.say(await voices.caller("Stop, stop. Wait a moment, please."))
        assert over - t_started < menu_s - 1.0, "the caller spoke after the menu had ended"
        await call.wait_event("agent_speech_ended", after=over, timeout=90)
        await call.wait_agent_quiet(since=t_started, quiet_s=1.5, timeout=90)
        assert not call.has_event("interrupted")
        played = call.agent_audio(since=t_started)
        # The whole menu went out (and the answer to what the caller said after it).
        assert len(played) / 2 / call.out_rate >= menu_s * 0.98
        lines = agent_lines(call, after=spoke)
        assert lines[0] == MENU
        assert "lemon tart" in await voices.hear(played, call.out_rate)  # coarse: it all played
    record = await wait_status(api, session_id, "ended")
    said = transcript(record)
    assert said[:3] == [("assistant", GREETING), ("user", said[1][1]), ("assistant", MENU)]
    assert "menu" in said[1][1].lower()
    # What the caller said over the menu was a turn of its own, answered after the menu.
    assert [r for r, _ in said[3:]] == ["user", "assistant"] and said[4][1] == SORRY
    assert not [e for e in await stored_events(api, session_id)
                if e["type"] == "llm.reply" and e["payload"].get("interrupted")]
