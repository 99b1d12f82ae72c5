"""A voice call whose speech providers are cloud services, configured the way an organization
admin does it: the secrets through `PUT /v1/secrets/{name}`, provider profiles through
`PUT /v1/org/providers`, and a flow that picks them by name. Deepgram (STT) and ElevenLabs
(TTS) are loopback stand-ins that speak their documented wire formats
(tests/providers/fake_*.py); the profiles are marked `internal` so the egress guard lets the
loopback address through, as an admin would for a host on their own network.

The Deepgram stand-in cannot understand audio, it answers with scripted words; so it is also
how a caller's speech that the STT finds no words in (`user_speech_ignored` `no_words`) is
made deterministic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from voice_api import publish_flow, start_voice_session, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, HOURS, bakery_flow

from tests.providers.fake_deepgram import FakeDeepgram
from tests.providers.fake_elevenlabs import MS_PER_CHAR, FakeElevenLabs

TTS_RATE = 24000


@pytest.fixture
async def cloud(api) -> AsyncIterator[tuple[FakeDeepgram, FakeElevenLabs]]:
    """The org's secrets and provider profiles aimed at the two stand-ins."""
    async with FakeDeepgram(transcripts=["what are your hours"]) as deepgram, \
            FakeElevenLabs() as eleven:
        for name, value in (("DEEPGRAM_API_KEY", deepgram.api_key),
                            ("ELEVEN_API_KEY", eleven.api_key)):
            r = await api.put(f"/v1/secrets/{name}", json={"value": value})
            assert r.status_code in (200, 201), r.text
        r = await api.put("/v1/org/providers", json={"profiles": [
            {"name": "dg", "capability": "stt", "internal": True,
             "config": {"kind": "deepgram", "base_url": deepgram.url,
                        "api_key_secret": "DEEPGRAM_API_KEY"}},
            {"name": "eleven", "capability": "tts", "internal": True,
             "config": {"kind": "elevenlabs", "base_url": eleven.url,
                        "sample_rate": TTS_RATE, "api_key_secret": "ELEVEN_API_KEY"}},
        ]})
        assert r.status_code == 200, r.text
        yield deepgram, eleven


def cloud_bakery() -> dict[str, Any]:
    return {**bakery_flow(), "providers": {"stt": {"profile": "dg"},
                                           "tts": {"profile": "eleven"}}}


async def wait_connections_closed(fake: Any, timeout: float = 15.0) -> None:
    """Until the stand-in holds no open connection from the call (the call's providers were
    closed with it, not left to the garbage collector)."""
    deadline = time.monotonic() + timeout
    while fake._runner.server.connections:
        assert time.monotonic() < deadline, \
            f"{type(fake).__name__}: {len(fake._runner.server.connections)} connections left open"
        await asyncio.sleep(0.05)


def peak_hz(pcm16: bytes, rate: int) -> float:
    a = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(a))
    return float(np.argmax(spectrum[1:]) + 1) * rate / a.size


async def test_a_call_speaks_and_listens_through_the_orgs_cloud_providers(
        api, voice_server, voices, cloud):
    deepgram, eleven = cloud
    session_id, url = await start_voice_session(api, voice_server,
                                                await publish_flow(api, cloud_bakery()))
    async with CallClient(url) as call:
        assert call.out_rate == TTS_RATE  # the ElevenLabs voice's rate, not Piper's 22050
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_lines(call) == [GREETING, HOURS]
        # The caller's words are the ones Deepgram sent back.
        assert user_lines(call) == ["what are your hours"]
        reply = call.agent_audio(since=spoke)
    # What was sent to the cloud: the agent's lines to ElevenLabs, the caller's audio to
    # Deepgram, each with the organization's key (the stand-ins refuse any other).
    assert "".join(eleven.texts).replace(" ", "") == (GREETING + HOURS).replace(" ", "")
    assert deepgram.attempts >= 1 and eleven.attempts >= 1
    # The audio the caller got is ElevenLabs' (the stand-in's tone, 60 ms a character).
    assert len(reply) / 2 / TTS_RATE >= 0.95 * len(HOURS) * MS_PER_CHAR / 1000
    assert abs(peak_hz(reply, TTS_RATE) - 0.06 * TTS_RATE / (2 * np.pi)) < 10
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", "what are your hours"),
                                  ("assistant", HOURS)]
    await wait_connections_closed(deepgram)
    await wait_connections_closed(eleven)
    usage = record["metrics"]["usage"]
    assert usage["stt"]["kind"] == "deepgram" and usage["stt"]["requests"] >= 1
    assert usage["tts"]["kind"] == "elevenlabs"
    # Sentences are sent one by one: the space between the greeting's two is not.
    assert usage["tts"]["characters"] == len(GREETING) - 1 + len(HOURS)
    # The keys are nowhere in what was stored.
    everything = str(record) + str(await stored_events(api, session_id))
    assert deepgram.api_key not in everything and eleven.api_key not in everything


async def test_speech_the_stt_finds_no_words_in_is_ignored_as_no_words(
        api, voice_server, voices, cloud):
    deepgram, _ = cloud
    deepgram.transcripts[:] = ["", "what are your hours"]
    session_id, url = await start_voice_session(api, voice_server,
                                                await publish_flow(api, cloud_bakery()))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        line = await voices.caller("Hours.")
        ignored = await call.wait_event("user_speech_ignored", after=await call.say(line) - 5,
                                        timeout=30)
        assert ignored == {"type": "user_speech_ignored", "reason": "no_words"}
        assert user_lines(call) == [] and agent_lines(call) == [GREETING]
        # The next utterance has words: it is a turn like any other.
        spoke = await call.say(line)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_lines(call) == [GREETING, HOURS]
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", "what are your hours"),
                                  ("assistant", HOURS)]
    assert len([e for e in await stored_events(api, session_id)
                if e["type"] == "user.turn"]) == 1
