"""A voice call whose flow hears with Vosk and speaks with Kokoro, end to end over the voice
WebSocket: an admin adds a Vosk STT profile and a Kokoro TTS profile, a flow picks them, a
caller says "어서 오세요" (espeak-ng's Korean, in real time), the flow branches on the words
Vosk heard, and Kokoro answers in Japanese at its own 24 kHz. The stored transcript holds
both sides.

The agent's Japanese is judged by its shape (rate, loudness, length), not by listening:
no Japanese recognizer runs here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from actors.audio import resample_pcm16
from actors.host import LocalVoiceHost
from aico.settings import ModelSettings, get_settings
from tests.providers.test_vosk_stt import espeak_korean, squeeze
from tests.voice.voice_call_client import CallClient, agent_lines, user_lines

GREETING = "いらっしゃいませ。ご用件をどうぞ。"
THANKS = "ありがとうございます。少々お待ちください。"
SORRY = "すみません、もう一度お願いします。"

PROFILES = [
    {"name": "korean", "capability": "stt", "config": {"kind": "vosk"}},
    {"name": "japanese", "capability": "tts", "config": {"kind": "kokoro", "voice": "jf_alpha"}},
]


def shop_flow() -> dict[str, Any]:
    return {
        "name": "Vosk and Kokoro",
        "providers": {"stt": {"profile": "korean"}, "tts": {"profile": "japanese"}},
        "variables": {"said": {"type": "string", "default": ""},
                      "voice_no_input_s": {"type": "number", "default": 60}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "greet", "type": "say", "text": GREETING},
                  {"id": "listen", "type": "listen", "into": "said"},
                  {"id": "thanks", "type": "say", "text": THANKS},
                  {"id": "sorry", "type": "say", "text": SORRY},
                  {"id": "end", "type": "end", "reason": "done"}],
        "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                  {"from": "listen", "to": "thanks", "when": "contains(said, '오세요')"},
                  {"from": "listen", "to": "sorry"},
                  {"from": "sorry", "to": "listen"},
                  {"from": "thanks", "to": "end"}],
    }


@pytest.fixture(scope="module")
async def call_server(settings, app_pool) -> AsyncIterator[str]:
    """The API on a loopback port (WebSockets need a real server), models in this process,
    connected as the application role (under row-level security) like the served API."""
    import uvicorn

    from serve_apps.api import create_app

    get_settings.cache_clear()
    pinned = settings.model_copy(update={"serving": ModelSettings(mode="inprocess")})
    app = create_app(pinned, pool=app_pool, voice_host=LocalVoiceHost(app_pool, pinned))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the server did not start"
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    await task


def pcm_rms(pcm16: bytes) -> float:
    a = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64) / 32768.0
    return float(np.sqrt((a * a).mean())) if a.size else 0.0


async def test_a_call_hears_korean_with_vosk_and_answers_in_japanese_with_kokoro(
        make_org, call_server, tmp_path):
    org = await make_org()
    r = await org.client.put("/v1/org/providers", json={"profiles": PROFILES})
    assert r.status_code == 200, r.text
    r = await org.client.post("/v1/flows", json={"name": "vk", "document": shop_flow()})
    assert r.status_code == 201, r.text
    flow = r.json()["id"]
    assert (await org.client.post(f"/v1/flows/{flow}/publish")).status_code == 201
    r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    session_id = UUID(r.json()["id"])
    url = f"{call_server}/v1/{r.json()['voice']['url'].split('/v1/', 1)[1]}"

    pcm, rate = espeak_korean("어서 오세요.", tmp_path / "caller.wav")
    caller = resample_pcm16(pcm, rate, 16000)
    async with CallClient(url) as call:
        assert call.out_rate == 24000  # Kokoro's rate, declared by the provider
        await call.wait_event("agent_speech_ended", timeout=120)
        assert agent_lines(call) == [GREETING]
        greeting = call.agent_audio()
        assert len(greeting) / (2 * 24000) > 1.0 and pcm_rms(greeting) > 0.02

        spoke = await call.say(caller)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
        assert agent_lines(call, after=spoke) == [THANKS]
        (heard,) = user_lines(call)
        assert squeeze(heard) == squeeze("어서 오세요"), heard
        answer = call.agent_audio(since=spoke)
        assert len(answer) / (2 * 24000) > 1.0 and pcm_rms(answer) > 0.02

    deadline = time.monotonic() + 30
    while True:
        record = (await org.client.get(f"/v1/sessions/{session_id}")).json()
        if record["status"] == "ended":
            break
        assert time.monotonic() < deadline, record["status"]
        await asyncio.sleep(0.05)
    assert [(t["role"], t["text"]) for t in record["transcript"]] == [
        ("assistant", GREETING), ("user", heard), ("assistant", THANKS)]
