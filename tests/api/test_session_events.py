"""`GET /v1/sessions/{id}/events`: the event log of a chat session that really ran, in order,
with its types and directions, and without the secret the session's LLM was called with.

The LLM is an `openai-compatible` profile an admin pointed at a loopback stand-in for OpenAI's
API (it speaks the documented chat-completions stream and checks the bearer key), so the
secret really travels during the session."""

from __future__ import annotations

import json

from tests.providers.fake_openai import FakeOpenAI

PLANTED = "sk-events-planted-5f1e2d3c4b5a-DO-NOT-LEAK"

FLOW = {
    "name": "Ask",
    "providers": {"llm": {"profile": "cloud", "temperature": 0.0}},
    "nodes": [{"id": "start", "type": "start"},
              {"id": "hello", "type": "say", "text": "Hi, ask me anything."},
              {"id": "hear", "type": "listen", "into": "question"},
              {"id": "answer", "type": "llm", "instructions": "Answer briefly."},
              {"id": "bye", "type": "end", "reason": "answered"}],
    "edges": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "hear"},
              {"from": "hear", "to": "answer"}, {"from": "answer", "to": "bye"}],
}


async def test_the_event_log_of_a_chat_session_that_ran(make_org):
    org = await make_org()
    api = org.client
    async with FakeOpenAI(api_key=PLANTED, reply="Paris is the capital.") as openai:
        assert (await api.put("/v1/secrets/CLOUD_KEY", json={"value": PLANTED})).status_code == 201
        r = await api.put("/v1/org/providers", json={"profiles": [{
            "name": "cloud", "capability": "llm", "internal": True,
            "config": {"kind": "openai-compatible", "base_url": openai.url, "model": "gpt-test",
                       "api_key_secret": "CLOUD_KEY"}}]})
        assert r.status_code == 200, r.text
        created = await api.post("/v1/flows", json={"name": "Ask", "document": FLOW})
        assert created.status_code == 201, created.text
        flow_id = created.json()["id"]
        assert (await api.post(f"/v1/flows/{flow_id}/publish")).status_code == 201

        started = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "chat"})
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]
        reply = await api.post(f"/v1/sessions/{session_id}/messages",
                               json={"text": "What is the capital of France?", "event_id": "q1"})
        assert reply.status_code == 200, reply.text
        assert [m["text"] for m in reply.json()["messages"]] == ["Paris is the capital."]
        assert reply.json()["status"] == "ended"
    # The secret did travel: the stand-in saw the right key on its chat route.
    assert [path for path, _ in openai.requests] == ["/v1/chat/completions"]

    r = await api.get(f"/v1/sessions/{session_id}/events")
    assert r.status_code == 200, r.text
    events = r.json()["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [(e["type"], e["direction"]) for e in events] == [
        ("session.started", "in"), ("say", "out"), ("listen", "out"),
        ("user.turn", "in"), ("llm.requested", "out"),
        ("llm.completed", "in"), ("llm.reply", "out"), ("end", "out")]
    assert events[1]["payload"]["text"] == "Hi, ask me anything."
    assert events[-1]["payload"] == {"reason": "answered"}
    turn = next(e for e in events if e["type"] == "user.turn")
    assert turn["event_id"] == "user:q1"
    assert turn["payload"]["text"] == "What is the capital of France?"
    completed = next(e for e in events if e["type"] == "llm.completed")
    assert "Paris is the capital." in json.dumps(completed["payload"])
    # Nothing the log holds carries the secret, nor does the session page.
    assert PLANTED not in r.text
    assert PLANTED not in (await api.get(f"/v1/sessions/{session_id}")).text

    # Paging: after_seq and limit walk the same log.
    first = (await api.get(f"/v1/sessions/{session_id}/events", params={"limit": 1})).json()
    rest = (await api.get(f"/v1/sessions/{session_id}/events",
                          params={"after_seq": 1})).json()
    assert first["items"] + rest["items"] == events

    # Another organization's admin cannot read it.
    other = await make_org()
    assert (await other.client.get(f"/v1/sessions/{session_id}/events")).status_code == 404
