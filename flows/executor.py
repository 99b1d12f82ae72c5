"""The stateless flow executor: one inbound event in, a stream of actions out.

How to call it:

    from flows.events import InboundEvent, Say, SayChunk, Listen, End
    from flows.executor import step

    async for action in step(pool, session_id, InboundEvent.user_turn("hi", event_id="abc")):
        ...  # Say / SayChunk / Listen / Transfer / End / StartChild, in order

`step` reconstructs the session from PostgreSQL (one query: state, variables, org settings and
whether this `event_id` was already applied), runs nodes until the flow must wait, and commits
the new state, the consumed event and the produced events in ONE statement guarded by
`sessions.version`. Only then do the actions leave. A conflicting concurrent step retries from a
fresh read; an `event_id` already applied changes nothing and yields what its first delivery
produced (its stored actions, then the confirmed LLM reply and what followed it).

An `llm` node's reply streams *after* that commit: `SayChunk`s leave as the model produces them
(`stream_id` is the llm token, `final=True` closes it), nothing is persisted meanwhile, and the
completed text is then committed as its own `llm.completed` event, which runs the flow on to its
next wait (those actions follow in the same stream). A caller that stops consuming mid-reply
(barge-in) may send `InboundEvent.llm_completed(token, heard_text, interrupted=True)` itself, or
just the next `user.turn`; the unconfirmed reply is then dropped from the history.
If a worker dies after the commit but before the reply was confirmed, delivering the same event
again re-runs the pending LLM call (the only post-commit work: llm replies, starting a subflow's
session, telling a parent its child ended; each is idempotent).

A session waiting on a subflow forwards `user.turn`, `timer.fired` and `llm.completed` to the
child session; when the child ends, the parent resumes in the same stream (the child's own
`End` is not relayed).

`step` runs in the caller's process (see CONTRIBUTING.md, "Where the executor runs"). Each step
is bounded: it reads one session row and one event index entry, and the LLM history is a window
kept in the state (`HISTORY_WINDOW`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from aico.errors import Conflict, NotFound
from aico.metrics import record_executor_step
from aico.settings import Settings, get_settings
from db import flows as flows_db
from db import session_events as session_events_db
from db import sessions as sessions_db
from flows import llm_context, memory, speculative
from flows.document import FlowDocument, parse_flow_document
from flows.events import Action, End, InboundEvent, SayChunk, StartChild, action_from_dict
from flows.runner import NotSpeculable, RunEnv, StepOutcome, persistence_hooks, run_bounded
from flows.speculative import SpeculativeReply

log = logging.getLogger("aico.flows.executor")

MAX_ATTEMPTS = 200
# What a session waiting on its subflow hands down to the child (the caller only knows the
# parent's id; an interrupted child reply is confirmed through the parent too).
_FORWARDED_TO_CHILD = ("user.turn", "timer.fired", "llm.completed")
LLMOpener = Callable[[dict[str, Any]], Awaitable[Any]]  # provider config -> ChatLLM


@dataclass
class StepContext:
    pool: asyncpg.Pool
    settings: Settings
    open_llm: LLMOpener | None = None
    # Hears when each LLM call starts (the voice pipeline's turn metrics).
    on_llm_start: Callable[[float], None] | None = None
    # Filled by `step` for benchmarks: seconds spent in model calls during the last step.
    model_seconds: float = 0.0
    # Replies started ahead of their turn (`speculate`), by the event id of the `user.turn`
    # they may answer; the step of that event adopts or cancels its entry.
    speculations: dict[str, asyncio.Future[SpeculativeReply | None]] = field(
        default_factory=dict)


_documents: OrderedDict[UUID, FlowDocument] = OrderedDict()
_DOCUMENT_CACHE_SIZE = 512


async def flow_document(pool: asyncpg.Pool, flow_version_id: UUID) -> FlowDocument:
    """A published version, parsed once per process (versions are immutable)."""
    doc = _documents.get(flow_version_id)
    if doc is None:
        row = await flows_db.get_flow_version_by_id(pool, version_id=flow_version_id)
        if row is None:
            raise NotFound(f"flow version {flow_version_id} not found")
        doc = parse_flow_document(row["document"])
        _documents[flow_version_id] = doc
        if len(_documents) > _DOCUMENT_CACHE_SIZE:
            _documents.popitem(last=False)
    return doc


async def step(
    pool: asyncpg.Pool,
    session_id: UUID | str,
    event: InboundEvent,
    *,
    settings: Settings | None = None,
    open_llm: LLMOpener | None = None,
    context: StepContext | None = None,
) -> AsyncIterator[Action]:
    """Apply `event` to the session and yield the actions it produces (see module docstring)."""
    ctx = context or StepContext(pool=pool, settings=settings or get_settings(),
                                 open_llm=open_llm)
    started, outcome = time.monotonic(), "failed"
    try:
        async for action in _step(ctx, UUID(str(session_id)), event):
            yield action
        outcome = "ok"
    except (GeneratorExit, asyncio.CancelledError):
        outcome = "abandoned"  # the caller stopped reading (a barge-in cancels the reply)
        raise
    finally:
        # A speculation the step did not adopt is not wanted any more.
        speculative.discard(ctx.speculations.pop(event.event_id, None))
        record_executor_step(time.monotonic() - started, outcome=outcome)


async def run_step(pool: asyncpg.Pool, session_id: UUID | str, event: InboundEvent,
                   **options: Any) -> list[Action]:
    """`step`, collected: every action of the step (and of the LLM replies it streamed)."""
    return [a async for a in step(pool, session_id, event, **options)]


async def _step(ctx: StepContext, session_id: UUID, event: InboundEvent) -> AsyncIterator[Action]:
    for attempt in range(MAX_ATTEMPTS):
        snap = await sessions_db.get_session_for_step(
            ctx.pool, session_id=session_id, event_id=event.event_id)
        if snap is None:
            raise NotFound(f"session {session_id} not found")
        if snap["applied_result"] is not None:
            async for action in _replay(ctx, snap, snap["applied_result"], event):
                yield action
            return
        wait = (snap["state"] or {}).get("wait") or {}
        if wait.get("kind") == "child" and event.type in _FORWARDED_TO_CHILD:
            # Record the hand-over on the parent first, so that a re-delivery after the child
            # has ended (and the parent moved on) goes to the child again, not to the parent.
            child_id = wait["child_session_id"]
            if await _commit_forward(ctx, snap, event, child_id) is None:
                await asyncio.sleep(random.uniform(0, min(0.02, 0.001 * 2 ** min(attempt, 5))))
                continue
            async for action in _relay_child(_step(ctx, UUID(child_id), event), child_id):
                yield action
            return
        doc = await flow_document(ctx.pool, snap["flow_version_id"])
        outcome = await run_bounded(doc, snap, _run_env(ctx, snap), event)
        version = await _commit(ctx, snap, event, outcome)
        if version is None:
            # Another step committed first: back off a little (jittered) and start over.
            await asyncio.sleep(random.uniform(0, min(0.02, 0.001 * 2 ** min(attempt, 5))))
            continue
        memory.after_commit(ctx.pool, snap, event, settings=ctx.settings, document=doc,
                            open_llm=ctx.open_llm)
        for action in outcome.actions:
            yield action
        committed = {**snap, "state": outcome.state, "variables": outcome.variables}
        pending = ctx.speculations.pop(event.event_id, None)
        for effect in outcome.effects:
            async for action in _run_effect(ctx, committed, effect, speculation=pending):
                yield action
        speculative.discard(pending)
        return
    raise Conflict(f"session {session_id} is too busy: gave up after {MAX_ATTEMPTS} attempts")


async def _commit(ctx: StepContext, snap: Any, event: InboundEvent,
                  outcome: StepOutcome) -> int | None:
    result = {"actions": [a.to_dict() for a in outcome.actions], "effects": outcome.effects}
    events = [{"event_id": event.event_id, "type": event.type, "direction": "in",
               "payload": event.payload, "result": result}]
    events += [{"event_id": f"{event.event_id}#{i}", "type": e["type"], "direction": "out",
                "payload": e.get("payload") or {}}
               for i, e in enumerate(outcome.out_events, start=1)]
    status = outcome.status
    if status not in ("ended", "failed"):
        status = "waiting" if outcome.state.get("wait") else "active"
    return await sessions_db.commit_session_step(
        ctx.pool, session_id=snap["id"], expected_version=snap["version"], status=status,
        state=outcome.state, variables=outcome.variables, events=events, turns=outcome.turns)


async def _commit_forward(ctx: StepContext, snap: Any, event: InboundEvent,
                          child_id: str) -> int | None:
    record = {"event_id": event.event_id, "type": event.type, "direction": "in",
              "payload": event.payload, "result": {"forwarded_to": child_id}}
    return await sessions_db.commit_session_step(
        ctx.pool, session_id=snap["id"], expected_version=snap["version"],
        status=snap["status"], state=snap["state"], variables=snap["variables"],
        events=[record], turns=[])


async def _replay(ctx: StepContext, snap: Any, result: dict[str, Any],
                  event: InboundEvent | None) -> AsyncIterator[Action]:
    """What the first delivery of this event produced, as far as it is stored: its actions,
    then its post-commit work (a confirmed LLM reply and what followed it; a pending reply
    is generated again), so a client that retries gets the same answer."""
    if "forwarded_to" in result and event is not None:
        child_id = result["forwarded_to"]
        async for action in _relay_child(_step(ctx, UUID(child_id), event), child_id):
            yield action
        return
    for data in result.get("actions", []):
        yield action_from_dict(data)
    wait = (snap["state"] or {}).get("wait") or {}
    for effect in result.get("effects", []):
        if effect["kind"] != "llm":
            # Starting a child and notifying a parent are idempotent: run them again.
            async for action in _run_effect(ctx, snap, effect):
                yield action
        elif wait.get("kind") == "llm" and wait.get("token") == effect["token"]:
            async for action in _run_effect(ctx, snap, effect):
                yield action
        else:
            async for action in _replay_llm_reply(ctx, snap, effect):
                yield action


async def _replay_llm_reply(ctx: StepContext, snap: Any,
                            effect: dict[str, Any]) -> AsyncIterator[Action]:
    done = await session_events_db.get_session_event(
        ctx.pool, session_id=snap["id"], event_id=f"llm:{effect['token']}")
    if done is None:
        return  # superseded before it was confirmed (barge-in): nothing was said
    doc = await flow_document(ctx.pool, snap["flow_version_id"])
    node = doc.node_map().get(effect["node_id"])
    text = str(done["payload"].get("text", ""))
    if getattr(node, "say", False) and not done["payload"].get("interrupted"):
        if text:
            yield SayChunk(text=text, node_id=effect["node_id"], stream_id=effect["token"])
        yield SayChunk(text="", node_id=effect["node_id"], stream_id=effect["token"], final=True)
    async for action in _replay(ctx, snap, done["result"] or {}, None):
        yield action


async def _run_effect(ctx: StepContext, snap: Any, effect: dict[str, Any], *,
                      speculation: asyncio.Future[SpeculativeReply | None] | None = None,
                      ) -> AsyncIterator[Action]:
    kind = effect["kind"]
    if kind == "llm":
        async for action in _stream_llm(ctx, snap, effect, speculation=speculation):
            yield action
    elif kind == "child":
        child_id = UUID(effect["child_session_id"])
        version_id = UUID(effect["flow_version_id"])
        doc = await flow_document(ctx.pool, version_id)
        await sessions_db.insert_session(
            ctx.pool, session_id=child_id, org_id=snap["org_id"], flow_id=UUID(effect["flow_id"]),
            flow_version_id=version_id, channel=snap["channel"],
            variables={**doc.initial_variables(), **effect["inputs"]},
            parent_session_id=snap["id"], user_id=snap["user_id"],
            user_cluster=snap["user_cluster"], providers=snap["providers"])
        yield StartChild(child_session_id=str(child_id), flow_id=effect["flow_id"],
                         node_id=effect["node_id"])
        async for action in _relay_child(_step(ctx, child_id, InboundEvent.session_started()),
                                         str(child_id)):
            yield action
    elif kind == "notify_parent":
        child = await sessions_db.get_session_brief(ctx.pool, session_id=snap["id"])
        if child is None:
            raise LookupError(f"session {snap['id']} is gone: cannot notify its parent")
        event = InboundEvent.child_completed(str(snap["id"]), dict(child["variables"]),
                                             effect["reason"])
        async for action in _step(ctx, UUID(effect["parent_session_id"]), event):
            yield action


async def _relay_child(actions: AsyncIterator[Action], child_id: str) -> AsyncIterator[Action]:
    """A child session's actions, minus its own End (the caller's session goes on)."""
    async for action in actions:
        if not (isinstance(action, End) and action.session_id == child_id):
            yield action


async def _llm_prompt(ctx: StepContext, snap: Any, node: Any) -> list[dict[str, Any]]:
    """The messages an llm node sends, given the session as committed (`snap`)."""
    namespace = {**snap["variables"], "session_id": str(snap["id"]), "channel": snap["channel"]}
    # The instructions are a template: rendered off the event loop (bounded, time-limited).
    prompt = await asyncio.to_thread(llm_context.llm_messages, node, variables=namespace,
                                     history=snap["state"].get("history") or [],
                                     channel=snap["channel"])
    return await memory.with_memory(ctx.pool, snap, node, prompt, settings=ctx.settings)


def _chat_options(node: Any, snap: Any) -> dict[str, Any]:
    """How an llm node's reply is asked for on the session's channel."""
    return {"temperature": node.temperature, "max_tokens": node.max_tokens,
            "spoken": snap["channel"] in llm_context.SPOKEN_CHANNELS}


async def _stream_llm(ctx: StepContext, snap: Any, effect: dict[str, Any], *,
                      speculation: asyncio.Future[SpeculativeReply | None] | None = None,
                      ) -> AsyncIterator[Action]:
    """Stream the reply of the llm node the session (as committed) waits on, then commit it
    as `llm.completed`. `snap` holds the state and variables of that commit. A speculative
    reply started for this very prompt is adopted instead of asking the LLM again."""
    from providers.llm import FINISH_INTERRUPTED, ChatMessage

    doc = await flow_document(ctx.pool, snap["flow_version_id"])
    node = doc.node_map()[effect["node_id"]]
    prompt = await _llm_prompt(ctx, snap, node)
    options = _chat_options(node, snap)
    stream = None
    if speculation is not None:
        reply = await _settled(speculation)
        if reply is not None:
            stream = reply.adopt(prompt, node_id=node.id, options=options)
            if stream is not None and ctx.on_llm_start is not None:
                ctx.on_llm_start(time.monotonic())  # its first token: what is left to wait
    if stream is None:
        llm = await _session_llm(ctx, snap)
        stream = llm.chat([ChatMessage(**m) for m in prompt], **options)
    token = effect["token"]
    parts: list[str] = []
    cut_short = False
    started = time.perf_counter()
    try:
        async for chunk in stream:
            # A model replica lost after the first tokens ends the reply with what was said
            # (providers/serve_clients.py): the history records it as interrupted.
            cut_short = cut_short or chunk.finish_reason == FINISH_INTERRUPTED
            if chunk.text:
                parts.append(chunk.text)
                if node.say:
                    yield SayChunk(text=chunk.text, node_id=node.id, stream_id=token)
    finally:
        ctx.model_seconds += time.perf_counter() - started
    if node.say:
        yield SayChunk(text="", node_id=node.id, stream_id=token, final=True)
    completed = InboundEvent.llm_completed(token, "".join(parts).strip(),
                                           interrupted=cut_short)
    async for action in _step(ctx, snap["id"], completed):
        yield action


async def _settled(pending: asyncio.Future[SpeculativeReply | None]) -> SpeculativeReply | None:
    """The speculation once prepared (it may still be reading the session), or None."""
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        if pending.cancelled():
            return None
        raise  # this step itself was cancelled
    except Exception:  # a failed speculation only means asking the LLM now
        log.warning("speculative reply failed", exc_info=True)
        return None


async def speculate(ctx: StepContext, session_id: UUID | str,
                    text: str) -> SpeculativeReply | None:
    """Run the step a `user.turn` of `text` would run, committing nothing, and start the LLM
    reply it leads to (see flows/speculative.py). None when the session is not waiting at a
    listen node or the step would do anything but say, set, listen and start an llm reply."""
    from providers.llm import ChatMessage

    snap = await sessions_db.get_session_for_step(
        ctx.pool, session_id=UUID(str(session_id)), event_id=f"speculative:{uuid4().hex}")
    if snap is None or snap["status"] in ("ended", "failed"):
        return None
    if ((snap["state"] or {}).get("wait") or {}).get("kind") != "listen":
        return None  # a collect node extracts with the LLM; other waits are not a turn's
    doc = await flow_document(ctx.pool, snap["flow_version_id"])
    env = replace(_run_env(ctx, snap), speculative=True)
    try:
        outcome = await run_bounded(doc, snap, env, InboundEvent.user_turn(text))
    except NotSpeculable:
        return None
    if outcome.status in ("ended", "failed") or len(outcome.effects) != 1 or \
            outcome.effects[0]["kind"] != "llm":
        return None
    node = doc.node_map()[outcome.effects[0]["node_id"]]
    committed = {**snap, "state": outcome.state, "variables": outcome.variables}
    prompt = await _llm_prompt(ctx, committed, node)
    options = _chat_options(node, snap)
    # The pipeline's turn metrics time the real turn's LLM call: this one is not announced.
    llm = await _session_llm(replace(ctx, on_llm_start=None, speculations={}), snap)
    reply = SpeculativeReply(text, node_id=node.id, prompt=prompt, options=options)
    reply.start(llm.chat([ChatMessage(**m) for m in prompt], **options))
    log.debug("session %s: speculative reply to %r started", snap["id"], text)
    return reply


def _run_env(ctx: StepContext, snap: Any) -> RunEnv:
    async def complete_llm(messages: list[dict[str, str]], options: dict[str, Any]) -> str:
        from providers.llm import ChatMessage

        llm = await _session_llm(ctx, snap)
        started = time.perf_counter()
        try:
            result = await llm.complete([ChatMessage(**m) for m in messages], **options)
        finally:
            ctx.model_seconds += time.perf_counter() - started
        return result.text

    async def latest_flow_version(flow_id: str) -> Any:
        return await flows_db.get_flow_version(ctx.pool, org_id=snap["org_id"],
                                               flow_id=UUID(flow_id))

    return RunEnv(settings=ctx.settings, complete_llm=complete_llm,
                  latest_flow_version=latest_flow_version,
                  **persistence_hooks(ctx.pool, snap, ctx.settings))


async def _session_llm(ctx: StepContext, snap: Any) -> Any:
    from flows.sessions import open_session_llm

    return await open_session_llm(ctx.pool, snap, open_llm=ctx.open_llm, settings=ctx.settings,
                                  on_start=ctx.on_llm_start)
