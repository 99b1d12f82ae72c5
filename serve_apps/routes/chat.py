"""Chat over HTTP: start a session of a flow's latest published version, send it messages (JSON or
Server-Sent Events), and receive async tool results on signed callback URLs.

Sessions are created by the session service (`flows.sessions.create_session`: the published
version, provider resolution with the organization's profiles and secrets, 412 naming missing
secrets); these routes parse, authorise, call it and return.

Voice sessions: `POST /v1/flows/{id}/sessions` with `"channel": "voice"` creates the session
without running it (the voice session actor sends `session.started` when the caller connects)
and asks `state.voice_session_info` (an async callable `(request, session_row) -> dict`; by
default the voice routes' own) for the `voice` field: the WebSocket URL and its short-lived
token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import AicoError, Forbidden, NotFound, ValidationFailed
from db import sessions as sessions_db
from flows.callbacks import SIGNATURE_PATTERN, verify_call
from flows.events import Action, InboundEvent, Say, SayChunk
from flows.executor import StepContext, step
from flows.sessions import create_session as create_session_for
from serve_apps.auth import Principal
from serve_apps.deps import EditorDep, MessageLimit, PoolDep, SessionStartLimit, StateDep
from serve_apps.idempotency import IdempotencyKey, run_idempotent

router = APIRouter(tags=["chat"])

MAX_TEXT_CHARS = 4000
EventId = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
                description="an id of your choosing; the same id sent twice is applied once")


class SessionUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    cluster: str | None = Field(default=None, min_length=1, max_length=200)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["chat", "voice"] = "chat"
    variables: dict[str, Any] = Field(default={}, max_length=100)
    user: SessionUser | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    event_id: str | None = EventId


class ToolResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["tool.result"] = "tool.result"
    result: Any = None


def _context(state: Any, pool: Any) -> StepContext:
    # `llm_opener` overrides how session LLMs are built (tests, embedding apps).
    return StepContext(pool=pool, settings=state.settings, open_llm=state.llm_opener)


def messages_of(actions: list[Action]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(assistant messages, other actions): streamed chunks are joined per stream."""
    messages: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    streams: dict[str, dict[str, Any]] = {}
    for action in actions:
        if isinstance(action, Say):
            messages.append({"role": "assistant", "text": action.text})
        elif isinstance(action, SayChunk):
            message = streams.get(action.stream_id)
            if message is None:
                message = streams[action.stream_id] = {"role": "assistant", "text": ""}
                messages.append(message)
            message["text"] += action.text
        elif action.kind != "listen":
            others.append(action.to_dict())
    for message in streams.values():
        message["text"] = message["text"].strip()
    return messages, others


async def _session_status(pool: Any, session_id: UUID) -> str:
    row = await sessions_db.get_session_brief(pool, session_id=session_id)
    return row["status"] if row else "ended"


@router.post("/v1/flows/{flow_id}/sessions", status_code=201, response_model=None)
async def create_session(flow_id: UUID, body: SessionCreate, request: Request,
                         principal: EditorDep, _limit: SessionStartLimit, pool: PoolDep,
                         state: StateDep, idempotency_key: IdempotencyKey = None) -> Any:
    return await run_idempotent(
        pool, state.settings, org_id=principal.org_id, key=idempotency_key, method="POST",
        path=f"/v1/flows/{flow_id}/sessions", body=body, status_code=201,
        run=lambda: _create_session(flow_id, body, request, principal, pool, state))


async def _create_session(flow_id: UUID, body: SessionCreate, request: Request,
                          principal: Principal, pool: Any, state: Any) -> dict[str, Any]:
    if body.channel == "voice":
        from serve_apps.routes.voice import ensure_voice_capacity

        await ensure_voice_capacity(pool, state, principal.org_id)  # 429 before anything is stored
    new = await create_session_for(
        pool, settings=state.settings, org_id=principal.org_id, flow_id=flow_id,
        channel=body.channel, variables=body.variables,
        user_id=body.user.id if body.user else None,
        user_cluster=body.user.cluster if body.user else None)
    row: dict[str, Any] = {"id": new.id, "org_id": new.org_id, "flow_id": new.flow_id,
                           "flow_version_id": new.flow_version_id, "channel": new.channel,
                           "status": new.status}
    out: dict[str, Any] = {"id": new.id, "flow_version": new.flow_version,
                           "channel": new.channel}
    if body.channel == "voice":
        info = state.voice_session_info
        if info is None:
            from serve_apps.routes.voice import voice_session_info

            info = voice_session_info
        out.update(status=new.status, messages=[], voice=await info(request, row))
        return out
    actions = [a async for a in step(pool, row["id"], InboundEvent.session_started(),
                                     context=_context(state, pool))]
    out["messages"], out["actions"] = messages_of(actions)
    out["status"] = await _session_status(pool, row["id"])
    return out


@router.post("/v1/sessions/{session_id}/messages", response_model=None)
async def post_message(session_id: UUID, body: MessageIn, principal: EditorDep,
                       _limit: MessageLimit, pool: PoolDep, state: StateDep,
                       stream: bool = Query(default=False),
                       idempotency_key: IdempotencyKey = None) -> Any:
    if idempotency_key is not None and not stream:
        return await run_idempotent(
            pool, state.settings, org_id=principal.org_id, key=idempotency_key, method="POST",
            path=f"/v1/sessions/{session_id}/messages", body=body, status_code=200,
            run=lambda: post_message(session_id, body, principal, None, pool, state, stream=False,
                                     idempotency_key=None))
    if idempotency_key is not None:
        raise ValidationFailed(
            "Idempotency-Key is not taken with stream=true (a stream cannot be replayed);"
            " send 'event_id' in the body to apply a message once",
            details=[{"field": "Idempotency-Key", "message": "not with stream=true"}])
    if await sessions_db.get_session(pool, org_id=principal.org_id, session_id=session_id) is None:
        raise NotFound(f"session {session_id} not found")
    # Client ids live in their own namespace, apart from the executor's derived ids.
    event = InboundEvent.user_turn(
        body.text, event_id=f"user:{body.event_id}" if body.event_id else None)
    actions = step(pool, session_id, event, context=_context(state, pool))
    if stream:
        return StreamingResponse(_sse(pool, session_id, actions), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    collected = [a async for a in actions]
    messages, others = messages_of(collected)
    return {"messages": messages, "actions": others,
            "status": await _session_status(pool, session_id)}


async def _sse(pool: Any, session_id: UUID, actions: AsyncIterator[Action]) -> AsyncIterator[str]:
    collected: list[Action] = []
    try:
        async for action in actions:
            collected.append(action)
            if isinstance(action, Say):
                yield _sse_event("chunk", {"text": action.text, "node_id": action.node_id,
                                           "final": True})
            elif isinstance(action, SayChunk):
                yield _sse_event("chunk", {"text": action.text, "node_id": action.node_id,
                                           "stream_id": action.stream_id, "final": action.final})
            elif action.kind != "listen":
                yield _sse_event("action", action.to_dict())
    except AicoError as exc:
        yield _sse_event("error", exc.to_body())
        return
    messages, others = messages_of(collected)
    yield _sse_event("final", {"messages": messages, "actions": others,
                               "status": await _session_status(pool, session_id)})


def _sse_event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


@router.post("/v1/sessions/{session_id}/events")
async def post_event(session_id: UUID, body: ToolResultIn, pool: PoolDep, state: StateDep,
                     call_id: str = Query(pattern=r"^[0-9a-f]{32}$"),
                     sig: str = Query(pattern=SIGNATURE_PATTERN)) -> dict[str, Any]:
    """A `tool.result` for an async http node, authorised by the signed URL it was given."""
    if not verify_call(state.settings, session_id, call_id, sig):
        raise Forbidden("the callback signature does not match this session and call")
    actions = [a async for a in step(pool, session_id, InboundEvent.tool_result(call_id, body.result),
                                     context=_context(state, pool))]
    messages, others = messages_of(actions)
    return {"messages": messages, "actions": others,
            "status": await _session_status(pool, session_id)}
