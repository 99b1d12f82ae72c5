"""The executor as a Ray task: a worker killed mid-step leaves the session consistent, and the
re-delivered event succeeds."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from uuid import UUID

import flow_fakes
import pytest
import ray
from flow_fakes import ScriptedLLM, linear, publish, start_chat

from db.session_events import list_session_events_for_session
from db.sessions import get_session_brief
from db.transcript_turns import count_transcript_turns
from flows.events import InboundEvent, SayChunk
from flows.tasks import step_task


@pytest.fixture(scope="module")
def ray_local(ray_cluster: None) -> Iterator[None]:
    # Test helpers travel to the workers by value (they are not an installed package).
    ray.cloudpickle.register_pickle_by_value(flow_fakes)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.unregister_pickle_by_value(flow_fakes)


class DyingLLM(ScriptedLLM):
    """Kills its worker process: `at="reply"` after the first streamed chunk, `at="extract"`
    inside a structured-output call (before the step has committed anything)."""

    def __init__(self, at: str) -> None:
        super().__init__(on_first_chunk=lambda: os._exit(1) if at == "reply" else None)
        self.at = at

    async def _chat_impl(self, messages, **options):
        if self.at == "extract" and options.get("response_format"):
            os._exit(1)
        async for chunk in super()._chat_impl(messages, **options):
            yield chunk


def dying(at: str):
    async def open_llm(config: dict) -> ScriptedLLM:
        return DyingLLM(at)
    return open_llm


async def healthy(config: dict) -> ScriptedLLM:
    return ScriptedLLM()


def run(dsn: str, sid: str, event: InboundEvent, settings, open_llm) -> list:
    return [ray.get(ref) for ref in step_task.remote(dsn, sid, event, settings=settings,
                                                    open_llm=open_llm)]


async def test_worker_killed_while_streaming_the_reply(ray_local, api, pool, pg_dsn, settings):
    flow = await publish(api, linear(
        "crash", {"id": "hear", "type": "listen"},
        {"id": "think", "type": "llm", "into": "answer"},
        {"id": "after", "type": "say", "text": "({{ answer }})"},
        {"id": "again", "type": "listen"}))
    sid = (await start_chat(api, flow))["id"]
    event = InboundEvent.user_turn("are you there", event_id="user:crash-1")
    with pytest.raises(ray.exceptions.RayError):
        run(pg_dsn, sid, event, settings, dying("reply"))

    # Consistent: the turn is committed once, the reply is pending, nothing half-written.
    session = await get_session_brief(pool, session_id=UUID(sid))
    events = await list_session_events_for_session(pool, session_id=UUID(sid))
    assert [e["seq"] for e in events] == list(range(1, session["event_seq"] + 1))
    assert [e["type"] for e in events if e["direction"] == "in"] == ["session.started",
                                                                     "user.turn"]
    assert "llm.reply" not in [e["type"] for e in events]
    state = (await pool.fetchrow("SELECT state FROM sessions WHERE id = $1", UUID(sid)))["state"]
    assert state["wait"]["kind"] == "llm" and session["status"] == "waiting"

    # The same event delivered again: the pending reply is generated and the flow moves on.
    actions = run(pg_dsn, sid, event, settings, healthy)
    reply = "".join(a.text for a in actions if isinstance(a, SayChunk))
    assert reply == "You said: are you there"
    assert [a.kind for a in actions if not isinstance(a, SayChunk)] == ["say", "listen"]
    # And again: a replay, which answers the same and changes nothing.
    version = (await get_session_brief(pool, session_id=UUID(sid)))["version"]
    replayed = run(pg_dsn, sid, event, settings, healthy)
    assert [(a.kind, getattr(a, "text", None)) for a in replayed] == [
        ("say_chunk", reply), ("say_chunk", ""), ("say", f"({reply})"), ("listen", None)]
    assert (await get_session_brief(pool, session_id=UUID(sid)))["version"] == version
    assert await count_transcript_turns(pool, session_id=UUID(sid)) == {"user": 1,
                                                                        "assistant": 2}


async def test_worker_killed_before_the_step_committed(ray_local, api, pool, pg_dsn, settings):
    flow = await publish(api, linear(
        "crash2", {"id": "form", "type": "collect", "prompt": "Name?",
                   "fields": {"name": {"type": "string"}}},
        {"id": "hi", "type": "say", "text": "Hi {{ name }}"}, {"id": "hear", "type": "listen"}))
    sid = (await start_chat(api, flow))["id"]
    before = await get_session_brief(pool, session_id=UUID(sid))
    event = InboundEvent.user_turn("name=Grace", event_id="user:crash-2")
    with pytest.raises(ray.exceptions.RayError):
        run(pg_dsn, sid, event, settings, dying("extract"))
    after = await get_session_brief(pool, session_id=UUID(sid))
    assert (after["version"], after["event_seq"]) == (before["version"], before["event_seq"])

    actions = run(pg_dsn, sid, event, settings, healthy)
    assert [getattr(a, "text", a.kind) for a in actions] == ["Hi Grace", "listen"]
    assert (await get_session_brief(pool, session_id=UUID(sid)))["variables"]["name"] == "Grace"
