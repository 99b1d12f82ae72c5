"""Optimistic concurrency and bounded steps: many writers on one session, a long conversation."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from uuid import UUID

from flow_fakes import linear, publish, scripted_opener, send, start_chat

from db.session_events import list_session_events_for_session
from db.sessions import get_session_brief
from db.transcript_turns import count_transcript_turns
from flows.events import InboundEvent
from flows.executor import run_step
from flows.llm_context import HISTORY_WINDOW


def counter_flow() -> dict:
    return linear(
        "counter", {"id": "hear", "type": "listen", "into": "said"},
        {"id": "inc", "type": "set", "assign": {"n": "n + 1", "seen": "seen + [said]"}},
        {"id": "ack", "type": "say", "text": "#{{ n }}"},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "inc"},
               {"from": "inc", "to": "ack"}, {"from": "ack", "to": "hear"}])


async def test_50_concurrent_messages_lose_nothing_and_apply_once(api, pool):
    flow = await publish(api, counter_flow())
    s = await start_chat(api, flow, variables={"n": 0, "seen": []})
    sid = s["id"]

    async def post(i: int) -> dict:
        return await send(api, sid, f"m{i}", event_id=f"m-{i}")

    replies = await asyncio.gather(*(post(i) for i in range(50)))
    # Each message got exactly one acknowledgement, and together they count 1..50.
    acks = sorted(int(r["messages"][0]["text"][1:]) for r in replies)
    assert acks == list(range(1, 51))
    # Some of them again (a client retrying): nothing changes.
    retried = await asyncio.gather(*(post(i) for i in range(0, 50, 5)))
    assert [r["messages"] for r in retried] == [replies[i]["messages"] for i in range(0, 50, 5)]

    session = await get_session_brief(pool, session_id=UUID(sid))
    assert session["variables"]["n"] == 50
    assert sorted(session["variables"]["seen"]) == sorted(f"m{i}" for i in range(50))
    events = await list_session_events_for_session(pool, session_id=UUID(sid))
    turns = [e for e in events if e["type"] == "user.turn"]
    assert sorted(e["event_id"] for e in turns) == sorted(f"user:m-{i}" for i in range(50))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert session["event_seq"] == len(events)
    assert await count_transcript_turns(pool, session_id=UUID(sid)) == {"user": 50,
                                                                        "assistant": 50}


async def test_a_200_turn_conversation_stays_bounded(api, pool, settings):
    flow = await publish(api, linear(
        "chatty", {"id": "hear", "type": "listen"},
        {"id": "think", "type": "llm", "history": True},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "think"},
               {"from": "think", "to": "hear"}]))
    sid = (await start_chat(api, flow))["id"]
    opener = scripted_opener()
    timings: list[float] = []
    state_sizes: list[int] = []
    for turn in range(200):
        started = time.perf_counter()
        actions = await run_step(pool, sid, InboundEvent.user_turn(f"turn {turn}"),
                                 settings=settings, open_llm=opener)
        timings.append(time.perf_counter() - started)
        assert "".join(getattr(a, "text", "") for a in actions) == f"You said: turn {turn}"
        if turn % 50 == 49:
            row = await pool.fetchrow("SELECT state FROM sessions WHERE id = $1", UUID(sid))
            state_sizes.append(len(json.dumps(row["state"])))
    # The history the LLM sees is a window, not the whole conversation.
    row = await pool.fetchrow("SELECT state FROM sessions WHERE id = $1", UUID(sid))
    assert len(row["state"]["history"]) == HISTORY_WINDOW
    assert row["state"]["history"][-1]["content"] == "You said: turn 199"
    # So the state a step reads and writes does not grow with the conversation.
    assert max(state_sizes) - min(state_sizes) < 200, state_sizes
    assert await count_transcript_turns(pool, session_id=UUID(sid)) == {"user": 200,
                                                                        "assistant": 200}
    early, late = timings[10:60], timings[-50:]
    print(f"\n200-turn conversation (user.turn + llm.completed, scripted LLM): "
          f"p50 turns 10-60 {statistics.median(early) * 1000:.1f} ms, "
          f"p50 last 50 {statistics.median(late) * 1000:.1f} ms, state sizes {state_sizes}")
