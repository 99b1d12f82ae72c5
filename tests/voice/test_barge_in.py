"""Speaking over the agent: a real interruption stops it and keeps only what was heard; a
backchannel ("yeah") does not interrupt."""

from __future__ import annotations

import asyncio
import time

from test_voice_call import voice_session
from voice_api import stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, SORRY, bakery_flow


def audio_s(pcm: bytes, rate: int) -> float:
    return len(pcm) / 2 / rate


async def wait_agent_audio(call: CallClient, *, since: float, seconds: float,
                           timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while audio_s(call.agent_audio(since=since), call.out_rate) < seconds:
        assert time.monotonic() < deadline, "the agent did not speak"
        await asyncio.sleep(0.02)


async def test_caller_interrupts_a_long_reply_and_only_what_they_heard_is_kept(
        api, voice_server, voices):
    session_id, url = await voice_session(api, voice_server, bakery_flow(story=True))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(await voices.caller("Tell me a story."))
        await wait_agent_audio(call, since=spoke, seconds=2.5)
        await call.say(await voices.caller("Stop, stop. Wait a moment, please."))
        interrupted = await call.wait_event("interrupted", after=spoke, timeout=30)
        t_int = next(t for t, e in call.events if e is interrupted)
        # The interrupted turn is answered like any other.
        answer = await call.wait_event("agent_speech_started", after=t_int, timeout=60)
        t_answer = next(t for t, e in call.events if e is answer)
        # Playback stopped: until the answer, at most the lead already on its way arrived.
        assert audio_s(call.agent_audio(since=t_int, until=t_answer), call.out_rate) < 0.5
        written = "".join(e["text"] for _, e in call.events
                          if e.get("type") == "agent_text" and e.get("stream_id"))
        heard = user_lines(call)
        assert agent_lines(call, after=t_int) == [SORRY]
    record = await wait_status(api, session_id, "ended")
    replies = [e["payload"] for e in await stored_events(api, session_id)
               if e["type"] == "llm.reply"]
    assert len(replies) == 1, "the heard part of the reply was not committed"
    stored = replies[0]
    assert stored["interrupted"] is True
    assert stored["text"] and stored["text"] == interrupted["heard"]
    assert len(stored["text"]) < len(written.strip())
    assert written.strip().startswith(stored["text"].split()[0])
    # The whole transcript: only the heard words of the reply are in it.
    assert len(heard) == 2 and "story" in heard[0].lower()
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", stored["text"]), ("user", heard[1]),
                                  ("assistant", SORRY)]


async def test_a_backchannel_does_not_interrupt_the_agent(api, voice_server, voices):
    _, url = await voice_session(api, voice_server, bakery_flow())
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(await voices.caller("The menu, please."))
        await wait_agent_audio(call, since=spoke, seconds=1.5)
        said = await call.say(await voices.caller("Yeah."))
        await call.wait_event("agent_speech_ended", after=said, timeout=60)
        assert not call.has_event("interrupted")
        ignored = await call.wait_event("user_speech_ignored", after=spoke, timeout=10)
        assert ignored["reason"] == "backchannel"
        heard = await voices.hear(call.agent_audio(since=spoke), call.out_rate)
        assert "lemon tart" in heard, heard
