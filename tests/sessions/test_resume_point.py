"""The typed resume point a (new or restarted) voice actor asks the session service for:
where a session stands, read from PostgreSQL alone."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from aico.errors import NotFound
from flows.sessions import resume_point

FLOW = {"name": "resume",
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "hi", "type": "say", "text": "Hello."},
                  {"id": "hear", "type": "listen", "into": "said"},
                  {"id": "bye", "type": "end"}],
        "edges": [{"from": "start", "to": "hi"}, {"from": "hi", "to": "hear"},
                  {"from": "hear", "to": "bye"}]}


async def test_resume_points_follow_the_committed_state(api, pool):
    r = await api.post("/v1/flows", json={"name": "resume", "document": FLOW})
    flow = r.json()["id"]
    assert (await api.post(f"/v1/flows/{flow}/publish")).status_code == 201

    # A voice session is created without running: its actor starts it when the caller comes.
    r = await api.post(f"/v1/flows/{flow}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    point = await resume_point(pool, UUID(r.json()["id"]))
    assert (point.kind, point.status) == ("start", "active")
    assert set(point.providers["configs"]) == {"stt", "llm", "tts"}

    chat = (await api.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})).json()
    point = await resume_point(pool, UUID(chat["id"]))
    assert (point.kind, point.status, point.llm_token) == ("listening", "waiting", None)
    assert point.providers["configs"]["llm"]["kind"] == "llamacpp"

    r = await api.post(f"/v1/sessions/{chat['id']}/messages", json={"text": "bye"})
    assert r.json()["status"] == "ended"
    point = await resume_point(pool, UUID(chat["id"]))
    assert (point.kind, point.variables["said"]) == ("ended", "bye")

    with pytest.raises(NotFound):
        await resume_point(pool, uuid4())
