"""The agent starts speaking at the first clause of an LLM reply, not at the end of its first
sentence: a caller hears the opening words while the LLM is still writing that sentence.

The LLM is an organization's OpenAI-compatible endpoint (a loopback stand-in that speaks the
chat-completions SSE wire format). It streams the reply word by word up to the middle of the
first sentence and then holds the rest until the test lets it go, which the test does only once
agent audio has arrived. Were speech to wait for the full stop, no audio could ever come and the
test would fail on its wait, without any timing in the assertions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from voice_api import publish_flow, start_voice_session, wait_status
from voice_call_client import CallClient, agent_lines

from tests.providers.fake_openai import FakeOpenAI, chat_chunk_stream

GREETING = "Hello."
OPENING = "Our bakery opens at seven in the morning, and on Sundays we"
REST = (" open a little later because the bakers need their rest. Thank you for calling.")
REPLY = OPENING + REST
FIRST_CLAUSE = "Our bakery opens at seven in the morning,"


class HeldOpenAI(FakeOpenAI):
    """Streams `reply` up to `hold_at` characters, then waits for `release` to send the rest."""

    def __init__(self, *, reply: str, hold_at: int) -> None:
        super().__init__(reply=reply)
        self.hold_at = hold_at
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        resp, send = await chat_chunk_stream(request, body, stream_id="chatcmpl-held")

        await send({"role": "assistant", "content": ""})
        head, tail = self.reply[:self.hold_at], self.reply[self.hold_at:]
        for word in head.split(" "):
            await send({"content": word + " "})
        self.holding.set()
        await self.release.wait()
        await send({"content": tail.lstrip(" ")})
        await send({}, "stop")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def llm_flow() -> dict[str, Any]:
    return {"name": "First clause", "variables": {"q": {"type": "string", "default": ""}},
            "providers": {"llm": {"profile": "held"}},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "greet", "type": "say", "text": GREETING},
                      {"id": "listen", "type": "listen", "into": "q"},
                      {"id": "answer", "type": "llm", "history": False, "temperature": 0,
                       "instructions": "You are a bakery's phone assistant."}],
            "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                      {"from": "listen", "to": "answer"}, {"from": "answer", "to": "listen"}]}


@pytest.fixture
async def held_llm(api) -> AsyncIterator[HeldOpenAI]:
    """The org's LLM profile `held`, aimed at the stand-in (internal: loopback is allowed)."""
    async with HeldOpenAI(reply=REPLY, hold_at=len(OPENING)) as fake:
        r = await api.put("/v1/secrets/HELD_LLM_KEY", json={"value": fake.api_key})
        assert r.status_code in (200, 201), r.text
        r = await api.put("/v1/org/providers", json={"profiles": [
            {"name": "held", "capability": "llm", "internal": True,
             "config": {"kind": "openai-compatible", "base_url": fake.url, "model": "held",
                        "api_key_secret": "HELD_LLM_KEY"}}]})
        assert r.status_code == 200, r.text
        yield fake


async def test_speech_starts_at_the_first_clause_while_the_llm_is_mid_sentence(
        api, voice_server, voices, held_llm):
    session_id, url = await start_voice_session(api, voice_server,
                                                await publish_flow(api, llm_flow()))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "1"})

        # The LLM has written only part of its first sentence and is holding the rest: the
        # caller hears the agent anyway.
        await asyncio.wait_for(held_llm.holding.wait(), 60)
        started = await call.wait_event("agent_speech_started", after=pressed, timeout=60)
        assert started == {"type": "agent_speech_started"}
        assert not held_llm.release.is_set()
        written = "".join(e["text"] for t, e in call.events if t >= pressed
                          and e.get("type") == "agent_text" and not e.get("final"))
        assert written.strip() == OPENING.strip()  # the sentence is not finished yet
        assert agent_lines(call, after=pressed) == []  # nor is the reply
        await call.wait_agent_quiet(since=pressed, quiet_s=0.3, timeout=60)
        early = call.agent_audio(since=pressed)

        # The rest follows once the LLM goes on; the caller hears the whole reply.
        released = time.monotonic()
        held_llm.release.set()
        heard_early = await voices.hear(early, call.out_rate)
        assert "open" in heard_early or "bakery" in heard_early, heard_early  # coarse: Whisper
        await call.wait_event("agent_speech_ended", after=released, timeout=60)
        assert agent_lines(call, after=pressed) == [REPLY]
        assert call.agent_audio(since=released)  # the rest of the reply came after the release
    chats = [body for path, body in held_llm.requests if path == "/v1/chat/completions"]
    assert len(chats) == 1
    record = await wait_status(api, session_id, "ended")
    assistant = [t["text"] for t in record["transcript"] if t["role"] == "assistant"]
    assert assistant == [GREETING, REPLY]  # stored whole, once
