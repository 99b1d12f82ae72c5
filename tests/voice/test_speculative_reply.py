"""The reply is prepared while the caller is still quiet at a pause: the LLM is asked on the
pause transcript before the turn has ended, the turn adopts that reply when it ends with the
same words, and a caller who goes on gets a reply to everything they said (the early one is
cancelled, never heard, never stored). Only say/listen/llm steps run ahead: an http node waits
for the real turn.

Real parts: Piper speaks the caller, Silero hears the pauses, Whisper transcribes through the
buffered `STT.stream()` adapter, the flow runs in the executor against PostgreSQL. The LLM is
an organization's OpenAI-compatible endpoint (a loopback stand-in speaking the SSE wire
format) that answers with the words it was asked about, so each reply names its question.
The end-of-turn model is off and the fallback silence long, so the test decides, by speaking
again or not, whether a pause ends the turn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from aiohttp import web
from voice_api import publish_flow, start_voice_session, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines

from tests.flows.flow_fakes import LoopbackHTTP, allow_loopback
from tests.providers.fake_openai import FakeOpenAI, chat_chunk_stream

GREETING = "Hello, bakery here."
SILENCE_S = 5.0  # the fallback silence that ends a turn (the model is off)
RATE = 16000


def reply_to(question: str) -> str:
    return f"You asked: {question.strip().rstrip('?.!')}."


class AnsweringLLM(FakeOpenAI):
    """Replies `reply_to(<the caller's last words>)`, word by word; remembers when each request
    arrived and whether its reader stayed to the end."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[float, str]] = []
        self.read_to_end: list[bool] = []
        self.arrived = asyncio.Event()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        question = body["messages"][-1]["content"]
        index = len(self.asked)
        self.asked.append((time.monotonic(), question))
        self.read_to_end.append(False)
        self.arrived.set()
        resp, send = await chat_chunk_stream(request, body, stream_id="chatcmpl-answer")

        try:
            await send({"role": "assistant", "content": ""})
            for word in reply_to(question).split(" "):
                await send({"content": word + " "})
            await send({}, "stop")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            self.read_to_end[index] = True
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client closed the request
        return resp

    async def next_request(self, *, timeout: float) -> str:
        seen = len(self.asked)
        deadline = time.monotonic() + timeout
        while len(self.asked) == seen:
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the LLM was not asked"
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.asked[seen][1]


def answering_flow(*, http_url: str | None = None) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": GREETING},
        {"id": "listen", "type": "listen", "into": "q"},
        {"id": "answer", "type": "llm", "history": False, "temperature": 0,
         "instructions": "You are a bakery's phone assistant."}]
    edges = [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
             {"from": "answer", "to": "listen"}]
    if http_url is None:
        edges.append({"from": "listen", "to": "answer"})
    else:
        nodes.append({"id": "lookup", "type": "http", "method": "POST",
                      "url": f"{http_url}/lookup", "body": "{{ q }}", "into": "found"})
        edges += [{"from": "listen", "to": "lookup"}, {"from": "lookup", "to": "answer"}]
    return {"name": "Speculative reply",
            "variables": {"q": {"type": "string", "default": ""},
                          "voice_end_of_turn_model": {"type": "boolean", "default": False},
                          "voice_end_of_turn_silence_s": {"type": "number",
                                                          "default": SILENCE_S}},
            "providers": {"llm": {"profile": "answering"}},
            "nodes": nodes, "edges": edges}


@pytest.fixture
async def answering_llm(api) -> AsyncIterator[AnsweringLLM]:
    """The org's LLM profile `answering`, aimed at the stand-in (internal: loopback allowed)."""
    async with AnsweringLLM() as fake:
        r = await api.put("/v1/secrets/ANSWERING_LLM_KEY", json={"value": fake.api_key})
        assert r.status_code in (200, 201), r.text
        r = await api.put("/v1/org/providers", json={"profiles": [
            {"name": "answering", "capability": "llm", "internal": True,
             "config": {"kind": "openai-compatible", "base_url": fake.url, "model": "answering",
                        "api_key_secret": "ANSWERING_LLM_KEY"}}]})
        assert r.status_code == 200, r.text
        yield fake


def turn_metrics(call: CallClient) -> list[dict[str, Any]]:
    return [e["turn"] for _, e in call.events if e.get("type") == "metrics" and "turn" in e]


def final_user_transcript_at(call: CallClient) -> float:
    return next(t for t, e in call.events if e.get("type") == "transcript"
                and e.get("role") == "user" and e.get("final"))


async def user_turn_events(api: Any, session_id: UUID) -> list[dict[str, Any]]:
    return [e for e in await stored_events(api, session_id) if e["type"] == "user.turn"]


async def test_the_reply_prepared_at_the_pause_is_the_one_spoken(
        api, voice_server, voices, answering_llm):
    session_id, url = await start_voice_session(api, voice_server,
                                                await publish_flow(api, answering_flow()))
    question = await voices.caller("What time do you open on Sunday?")
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(question)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        [heard] = user_lines(call)
        # The LLM was asked once, on the words the turn ended with, before it had ended.
        assert [q for _, q in answering_llm.asked] == [heard]
        assert answering_llm.asked[0][0] < final_user_transcript_at(call)
        assert agent_lines(call) == [GREETING, reply_to(heard)]
        [turn] = turn_metrics(call)
        assert turn["speculation"] == "adopted"
        # Its opening was synthesized during the pause too: the agent's first words were ready.
        assert turn["tts_ahead"] is True
    assert answering_llm.read_to_end == [True]
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard),
                                  ("assistant", reply_to(heard))]
    assert [e["payload"]["text"] for e in await user_turn_events(api, session_id)] == [heard]


async def test_a_caller_who_goes_on_after_the_pause_is_answered_on_everything_said(
        api, voice_server, voices, answering_llm):
    session_id, url = await start_voice_session(api, voice_server,
                                                await publish_flow(api, answering_flow()))
    first = await voices.caller("What are your opening hours")
    rest = await voices.caller("on Sunday morning?")
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        await call.say(first)
        # The caller pauses; the reply to what they said so far is asked for...
        early = await answering_llm.next_request(timeout=SILENCE_S - 1)
        # ...and they go on before the silence ends their turn.
        spoke = await call.say(rest)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        [heard] = user_lines(call)
        assert "sunday" in heard.lower() and "sunday" not in early.lower()
        # The early reply was cancelled: the caller hears the reply to the whole question.
        assert [q for _, q in answering_llm.asked][-1] == heard
        assert agent_lines(call) == [GREETING, reply_to(heard)]
        spoken = " ".join(e["text"] for _, e in call.events if e.get("type") == "agent_text")
        assert reply_to(early) not in spoken
        [turn] = turn_metrics(call)
        assert turn["speculation"] == "adopted"  # the second pause's, on the whole question
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard),
                                  ("assistant", reply_to(heard))]
    assert [e["payload"]["text"] for e in await user_turn_events(api, session_id)] == [heard]
    stored = json.dumps(await stored_events(api, session_id))
    assert reply_to(early) not in stored


async def test_an_http_node_before_the_llm_waits_for_the_real_turn(
        api, voice_server, voices, answering_llm):
    await allow_loopback(api)
    lookup = LoopbackHTTP()
    try:
        session_id, url = await start_voice_session(
            api, voice_server, await publish_flow(api, answering_flow(http_url=lookup.url)))
        question = await voices.caller("Do you have croissants today?")
        async with CallClient(url) as call:
            await call.wait_event("agent_speech_ended", timeout=60)
            spoke = await call.say(question)
            await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
            [heard] = user_lines(call)
            [turn] = turn_metrics(call)
            # A speculation was considered at the pause and refused: nothing ran ahead.
            assert turn["speculation"] == "refused"
            assert agent_lines(call) == [GREETING, reply_to(heard)]
        # The API was called once, for the real turn, and the LLM asked once, after it.
        assert [r["body"] for r in lookup.requests] == [heard]
        assert [q for _, q in answering_llm.asked] == [heard]
        assert answering_llm.asked[0][0] > final_user_transcript_at(call)
        record = await wait_status(api, session_id, "ended")
        assert transcript(record) == [("assistant", GREETING), ("user", heard),
                                      ("assistant", reply_to(heard))]
    finally:
        lookup.close()
