"""Provider usage lands in one place for every session, whatever its channel: a chat session
whose (real, offline) LLM answered shows the LLM's usage on its page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def models_in_process(monkeypatch: pytest.MonkeyPatch, app) -> None:
    monkeypatch.setenv("AICO_MODELS", "inprocess")
    assert app.state.aico.llm_opener is None  # the real provider path, no fake


async def test_a_chat_session_shows_the_usage_of_its_llm(api):
    doc = {"name": "usage",
           "providers": {"llm": {"temperature": 0.0, "max_tokens": 8}},
           "nodes": [{"id": "start", "type": "start"},
                     {"id": "hear", "type": "listen"},
                     {"id": "reply", "type": "llm", "instructions": "Answer in one word."}],
           "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "reply"},
                     {"from": "reply", "to": "hear"}]}
    r = await api.post("/v1/flows", json={"name": "usage", "document": doc})
    assert r.status_code == 201, r.text
    flow = r.json()["id"]
    assert (await api.post(f"/v1/flows/{flow}/publish")).status_code == 201
    s = (await api.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})).json()
    assert (await api.get(f"/v1/sessions/{s['id']}")).json()["metrics"].get("usage", {}) == {}

    for text in ("Hello", "Thanks"):
        r = await api.post(f"/v1/sessions/{s['id']}/messages", json={"text": text})
        assert r.status_code == 200 and r.json()["messages"][0]["text"]

    usage = (await api.get(f"/v1/sessions/{s['id']}")).json()["metrics"]["usage"]["llm"]
    assert usage["kind"] == "llamacpp"
    assert usage["requests"] == 2
    assert usage["prompt_tokens"] > 10
    assert 2 <= usage["completion_tokens"] <= 16  # max_tokens 8 per reply, from the flow
