"""The greeting of a published flow version is synthesized once per process: the next call
plays the same audio without asking the TTS for it. A different voice setting (an organization
profile with a slower Piper voice) is a different sound, so it is synthesized afresh.

Whether the TTS was asked is read where an operator reads it: the session's stored usage
(`metrics.usage.tts.requests`, the provider's own count of synthesis requests)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from voice_api import publish_flow, start_voice_session, wait_status
from voice_call_client import CallClient, agent_lines


def greeting_flow(greeting: str, *, tts_profile: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "Greeting", "variables": {"q": {"type": "string", "default": ""}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "greet", "type": "say", "text": greeting},
                  {"id": "listen", "type": "listen", "into": "q"}],
        "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"}]}
    if tts_profile:
        doc["providers"] = {"tts": {"profile": tts_profile}}
    return doc


async def greeted_call(api: Any, voice_server: Any, flow_id: str) -> tuple[bytes, int, int]:
    """One call that hears the greeting and hangs up: (its audio, its rate, TTS requests)."""
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        audio, rate = call.agent_audio(), call.out_rate
    record = await wait_status(api, session_id, "ended")
    assert [t["role"] for t in record["transcript"]] == ["assistant"]
    return audio, rate, record["metrics"]["usage"]["tts"]["requests"]


async def test_a_second_call_plays_the_greeting_without_synthesis(api, voice_server, voices):
    # A greeting no other test speaks, so the first call below is this process's first.
    number = secrets.randbelow(9000) + 1000
    greeting = f"Welcome to the corner bakery, caller {number}. How can I help?"
    flow_id = await publish_flow(api, greeting_flow(greeting))

    first_audio, rate, first_requests = await greeted_call(api, voice_server, flow_id)
    assert first_requests >= 1  # synthesized
    heard = await voices.hear(first_audio, rate)
    assert "bakery" in heard or "welcome" in heard, heard  # coarse: Whisper's words

    second_audio, _, second_requests = await greeted_call(api, voice_server, flow_id)
    assert second_requests == 0  # played from memory: the TTS was not asked
    assert second_audio.rstrip(b"\0") == first_audio.rstrip(b"\0")  # the same greeting

    # The organization adds a slower Piper voice; a flow that speaks with it is not served the
    # cached audio of the other voice.
    r = await api.put("/v1/org/providers", json={"profiles": [
        {"name": "slow", "capability": "tts", "config": {"kind": "piper", "length_scale": 1.4}}]})
    assert r.status_code == 200, r.text
    slow_flow = await publish_flow(api, greeting_flow(greeting, tts_profile="slow"))
    slow_audio, _, slow_requests = await greeted_call(api, voice_server, slow_flow)
    assert slow_requests >= 1
    assert len(slow_audio.rstrip(b"\0")) > len(first_audio.rstrip(b"\0"))  # slower, longer


async def test_only_the_greeting_is_kept_not_what_is_said_after_a_turn(api, voice_server):
    """Only the opening `say` texts are kept: what follows a caller's turn may be theirs."""
    number = secrets.randbelow(9000) + 1000
    greeting = f"Hello, bakery {number} here."
    after = f"Your order {number} is noted."
    doc = greeting_flow(greeting)
    doc["nodes"] += [{"id": "noted", "type": "say", "text": after}]
    doc["edges"] += [{"from": "listen", "to": "noted"}, {"from": "noted", "to": "listen"}]
    flow_id = await publish_flow(api, doc)
    requests = []
    for _ in range(2):
        session_id, url = await start_voice_session(api, voice_server, flow_id)
        async with CallClient(url) as call:
            await call.wait_event("agent_speech_ended", timeout=60)
            pressed = time.monotonic()
            await call.send_event({"type": "dtmf", "digit": "1"})
            await call.wait_event("agent_speech_ended", after=pressed, timeout=60)
            assert agent_lines(call) == [greeting, after]
        record = await wait_status(api, session_id, "ended")
        requests.append(record["metrics"]["usage"]["tts"]["requests"])
    # First call: the greeting and the answer; second: only the answer (said after a turn).
    assert requests[1] == 1 and requests[0] >= 2, requests
