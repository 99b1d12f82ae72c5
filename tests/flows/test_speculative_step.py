"""A reply prepared ahead of its turn (`flows.executor.speculate`): the step it runs commits
nothing and calls nothing out; the real `user.turn` with the same words adopts the LLM stream
it started (the LLM is asked once, the turn stored once); other words cancel it."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from flow_fakes import ScriptedLLM, allow_loopback, linear, publish, scripted_opener, start_chat

from db.session_events import list_session_events_for_session
from flows.events import InboundEvent, SayChunk
from flows.executor import StepContext, speculate, step


def answering_flow(*, http_url: str | None = None) -> dict:
    nodes: list[dict] = [{"id": "hear", "type": "listen", "into": "q"},
                         {"id": "think", "type": "llm", "history": True}]
    edges = [{"from": "start", "to": "hear"}, {"from": "think", "to": "hear"}]
    if http_url is None:
        edges.append({"from": "hear", "to": "think"})
    else:
        nodes.append({"id": "lookup", "type": "http", "method": "POST",
                      "url": f"{http_url}/lookup", "body": "{{ q }}", "into": "found"})
        edges += [{"from": "hear", "to": "lookup"}, {"from": "lookup", "to": "think"}]
    return linear("speculative", *nodes, edges=edges)


async def stored(pool, sid: str) -> list[Any]:
    return await list_session_events_for_session(pool, session_id=UUID(sid))


async def reply_text(ctx: StepContext, sid: str, event: InboundEvent) -> str:
    return "".join(a.text for a in [a async for a in step(ctx.pool, sid, event, context=ctx)]
                   if isinstance(a, SayChunk))


async def test_the_turn_adopts_the_reply_prepared_for_its_words(api, pool, settings):
    sid = (await start_chat(api, await publish(api, answering_flow())))["id"]
    llm = ScriptedLLM()
    ctx = StepContext(pool=pool, settings=settings, open_llm=scripted_opener(llm))
    before = await stored(pool, sid)
    version = await pool.fetchval("SELECT version FROM sessions WHERE id = $1", UUID(sid))

    reply = await speculate(ctx, sid, "when do you open")
    assert reply is not None
    chunks = [c async for c in reply.peek()]  # the LLM has answered, unheard
    assert "".join(c.text for c in chunks) == "You said: when do you open"
    # Nothing of it is stored: the session is as it was.
    assert await stored(pool, sid) == before
    assert await pool.fetchval("SELECT version FROM sessions WHERE id = $1",
                               UUID(sid)) == version

    turn = InboundEvent.user_turn("when do you open")
    ctx.speculations[turn.event_id] = asyncio.ensure_future(asyncio.sleep(0, reply))
    assert await reply_text(ctx, sid, turn) == "You said: when do you open"
    assert reply.adopted
    assert len(llm.requests) == 1  # asked once, ahead of the turn
    events = await stored(pool, sid)
    assert [e["payload"]["text"] for e in events if e["type"] == "user.turn"] == [
        "when do you open"]
    assert [e["payload"]["text"] for e in events if e["type"] == "llm.reply"] == [
        "You said: when do you open"]
    assert ctx.speculations == {}


async def test_other_words_cancel_the_prepared_reply(api, pool, settings):
    sid = (await start_chat(api, await publish(api, answering_flow())))["id"]
    gate = asyncio.Event()  # the prepared reply stops after its first word
    llm = ScriptedLLM(gate=gate)
    ctx = StepContext(pool=pool, settings=settings, open_llm=scripted_opener(llm))
    reply = await speculate(ctx, sid, "when do you")
    assert reply is not None
    async for _ in reply.peek():
        break  # it has started

    turn = InboundEvent.user_turn("when do you open on sunday")
    ctx.speculations[turn.event_id] = asyncio.ensure_future(asyncio.sleep(0, reply))
    gate.set()
    assert await reply_text(ctx, sid, turn) == "You said: when do you open on sunday"
    assert reply.cancelled and not reply.adopted
    assert [m[-1].content for m in llm.requests] == ["when do you",
                                                     "when do you open on sunday"]
    events = await stored(pool, sid)
    replies = [e["payload"]["text"] for e in events if e["type"] == "llm.reply"]
    assert replies == ["You said: when do you open on sunday"]


async def test_an_http_node_refuses_the_speculation(api, pool, settings, loopback_http):
    await allow_loopback(api)
    sid = (await start_chat(api, await publish(api, answering_flow(
        http_url=loopback_http.url))))["id"]
    llm = ScriptedLLM()
    ctx = StepContext(pool=pool, settings=settings, open_llm=scripted_opener(llm))
    before = await stored(pool, sid)

    assert await speculate(ctx, sid, "croissants") is None
    assert loopback_http.requests == [] and llm.requests == []
    assert await stored(pool, sid) == before

    # The real turn runs it, once.
    assert await reply_text(ctx, sid, InboundEvent.user_turn("croissants")) == (
        "You said: croissants")
    assert [r["body"] for r in loopback_http.requests] == ["croissants"]
