"""Acceptance with the real offline LLM (llama.cpp running SmolLM2-135M in this process): the
flow with every node type over HTTP, and a streamed reply. The model is tiny, so these tests
assert on behaviour (a reply streamed in chunks, persisted, the flow moving on), not on wit."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from flow_fakes import allow_loopback, every_node_flow, linear, publish, send, start_chat

from db.session_events import list_session_events_for_session

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def models_in_process(monkeypatch: pytest.MonkeyPatch, app) -> None:
    monkeypatch.setenv("AICO_MODELS", "inprocess")
    assert app.state.aico.llm_opener is None  # the real provider path, no fake


async def test_every_node_type_with_the_real_llm(make_org, loopback_http, anon, pool):
    org = await make_org()
    await allow_loopback(org.client)
    api = org.client
    child = await publish(api, linear(
        "pin", {"id": "ask", "type": "say", "text": "Your PIN?"},
        {"id": "hear", "type": "listen", "into": "pin"}, {"id": "ok", "type": "end"}))
    doc = every_node_flow(child, loopback_http.url)
    for node in doc["nodes"]:
        if node["type"] == "collect":
            node["max_attempts"] = 1  # a 135M model may not extract; the flow goes on anyway
        if node["type"] == "llm":
            node["max_tokens"] = 40
            node["temperature"] = 0  # greedy: the same answer every run (no seed is exposed)
    flow = await publish(api, doc)

    s = await start_chat(api, flow)
    assert [m["text"] for m in s["messages"]] == ["Welcome!", "Your name?"]
    reply = await send(api, s["id"], "My name is Ada.")
    assert reply["status"] == "waiting"
    callback = loopback_http.requests[-1]["headers"]["X-AICO-Callback-URL"]
    r = await anon.post(callback.split("127.0.0.1:8000", 1)[1],
                        json={"type": "tool.result", "result": {"id": "T-1"}})
    assert r.status_code == 200, r.text
    assert [m["text"] for m in r.json()["messages"]] == ["Your PIN?"]
    reply = await send(api, s["id"], "1234")
    (answer,) = reply["messages"]
    assert answer["text"].strip(), reply
    reply = await send(api, s["id"], "thanks, bye")
    assert reply["status"] == "ended"

    events = await list_session_events_for_session(pool, session_id=UUID(s["id"]))
    extracted = [e for e in events if e["type"] == "collect.extracted"]
    assert len(extracted) == 1 and isinstance(extracted[0]["payload"]["fields"], dict)
    (llm_reply,) = [e for e in events if e["type"] == "llm.reply"]
    assert llm_reply["payload"]["text"] == answer["text"]


async def test_real_llm_reply_streams_in_chunks_over_sse(api, pool):
    flow = await publish(api, linear(
        "stream", {"id": "hear", "type": "listen"},
        {"id": "think", "type": "llm", "instructions": "Answer in two sentences.",
         "max_tokens": 48, "temperature": 0},
        {"id": "again", "type": "listen"}))
    s = await start_chat(api, flow)
    async with api.stream("POST", f"/v1/sessions/{s['id']}/messages?stream=true",
                          json={"text": "What is the sun?"}) as r:
        body = "".join([chunk async for chunk in r.aiter_text()])
    events = [block.split("\n", 1) for block in body.strip().split("\n\n")]
    chunks = [json.loads(d.removeprefix("data: ")) for n, d in events if n == "event: chunk"]
    streamed = [c for c in chunks if c.get("stream_id") and c["text"]]
    assert len(streamed) > 3, chunks
    final = json.loads(events[-1][1].removeprefix("data: "))
    text = "".join(c["text"] for c in streamed).strip()
    assert final["messages"][0]["text"] == text
    r = await api.get(f"/v1/sessions/{s['id']}")
    assert r.json()["transcript"][-1] == {**r.json()["transcript"][-1], "role": "assistant",
                                          "text": text}
