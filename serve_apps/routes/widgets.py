"""The embeddable web widget: admins create widgets (a public key `wk_…` for a flow and the
origins allowed to embed it); visitors on those sites chat with the flow through public
endpoints that check `Origin` against the allow-list (403 otherwise, nothing stored), answer
CORS for it, are rate-limited per widget key and per visitor, and never see an organization
token: a visitor reaches only the session it started, with the visitor token it was given.

    <script src="https://aico.example/widget.js" data-widget="wk_…"></script>

`/widget.js` is built from `frontend/src/widget/` into `frontend/dist/widget.js` (`npm run
build`): a launcher button and a chat panel in a shadow root (the host page's styles and scripts
do not reach it; themable by CSS variables).
A host site may name its user: its backend signs a visitor token with the widget's identity
secret (shown once at creation, `sign_visitor`), the page passes it as `data-visitor-token`, and
the session is that user's. Replies stream (`?stream=true`: Server-Sent Events).

Voice, for a widget created with `"voice": true`: `POST /v1/widget/{key}/voice` (same Origin
check, rate limits per visitor and per key, optional visitor token) creates a voice session and
returns its single-use voice WebSocket URL (docs/voice-protocol.md). The session is recorded as
the widget's, so the socket's handshake `Origin` is checked against the same allow-list
(serve_apps/routes/voice.py: refused with 1008 `origin_refused` before anything starts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import AicoError, Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from db import flows as flows_db
from db import widgets as widgets_db
from db.rate_limits import take_rate_limit_slot
from flows.events import Action, InboundEvent, Say, SayChunk
from flows.executor import StepContext, step
from flows.sessions import create_session
from providers.secrets import secret_box
from providers.secrets_crypto import SealedSecret
from serve_apps.deps import AdminDep, PoolDep, StateDep
from serve_apps.routes.chat import messages_of
from serve_apps.routes.voice import ensure_voice_capacity, voice_session_info
from serve_apps.state import app_state

router = APIRouter(tags=["widgets"])

WIDGET_JS = Path(__file__).resolve().parents[2] / "frontend" / "dist" / "widget.js"


class WidgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_id: UUID
    allowed_origins: list[str] = Field(min_length=1, max_length=32)
    voice: bool = False


class WidgetOut(BaseModel):
    id: UUID
    public_key: str
    flow_id: UUID
    allowed_origins: list[str]
    voice: bool
    created_at: datetime


class VisitorMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visitor_token: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=4000)


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ValidationFailed(
            f"'allowed_origins' entry {value!r} is not an origin (scheme://host[:port])",
            details=[{"field": "allowed_origins", "message": f"not an origin: {value}"}])
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class VisitorStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # `<user id>.<expiry, unix seconds>.<base64url HMAC-SHA256 of "<user id>.<expiry>">` keyed
    # by the widget's identity secret: signed by the host site's backend to name its user.
    visitor_token: str | None = Field(default=None, max_length=500)


def sign_visitor(identity_secret: str, user_id: str, expires_at: int) -> str:
    """What the host site's backend computes (here for tests and for Python backends)."""
    mac = hmac.new(identity_secret.encode(), f"{user_id}.{expires_at}".encode(), hashlib.sha256)
    return f"{user_id}.{expires_at}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"


def visitor_user(identity_secret: str, token: str) -> str:
    """The user a visitor token names, or 401."""
    signed = token.rpartition(".")[0]  # "<user id>.<expiry>"; a user id may hold dots
    name, _, expires = signed.rpartition(".")
    if not name or not expires.isdigit() or not hmac.compare_digest(
            sign_visitor(identity_secret, name, int(expires)), token):
        raise Unauthorized("the visitor token does not verify with this widget's identity secret")
    if int(expires) <= time.time():
        raise Unauthorized(f"the visitor token expired at {int(expires)}")
    return name


def _identity_secret(state: Any, widget: Any) -> str:
    sealed = SealedSecret(widget["identity_key_id"], widget["identity_nonce"],
                          widget["identity_ciphertext"])
    return secret_box(state.settings).open(sealed, org_id=widget["org_id"],
                                           name=f"widget:{widget['id']}")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@router.post("/v1/widgets", status_code=201)
async def create_widget(body: WidgetCreate, principal: AdminDep, pool: PoolDep,
                        state: StateDep) -> dict[str, Any]:
    if await flows_db.get_flow(pool, org_id=principal.org_id, flow_id=body.flow_id) is None:
        raise NotFound(f"flow {body.flow_id} not found")
    origins = sorted({_origin(o) for o in body.allowed_origins})
    widget_id = uuid.uuid4()
    identity_secret = "wis_" + secrets.token_urlsafe(32)
    sealed = secret_box(state.settings).seal(identity_secret, org_id=principal.org_id,
                                             name=f"widget:{widget_id}")
    row = await widgets_db.insert_widget(
        pool, org_id=principal.org_id, widget_id=widget_id,
        public_key="wk_" + secrets.token_urlsafe(18), flow_id=body.flow_id,
        allowed_origins=origins, voice=body.voice, identity_key_id=sealed.key_id,
        identity_nonce=sealed.nonce, identity_ciphertext=sealed.ciphertext)
    # The identity secret is shown once: the host site's backend signs visitor tokens with it.
    return {**WidgetOut(**dict(row)).model_dump(mode="json"), "identity_secret": identity_secret}


@router.get("/v1/widgets")
async def list_widgets(principal: AdminDep, pool: PoolDep) -> dict[str, list[WidgetOut]]:
    return {"items": [WidgetOut(**dict(r))
                      for r in await widgets_db.list_widgets(pool, org_id=principal.org_id)]}


@router.delete("/v1/widgets/{widget_id}", status_code=204)
async def delete_widget(widget_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    if not await widgets_db.delete_widget(pool, org_id=principal.org_id, widget_id=widget_id):
        raise NotFound(f"widget {widget_id} not found")
    return Response(status_code=204)


# --- public: what the widget script calls ----------------------------------------------------

async def _widget_for(pool: Any, key: str, request: Request) -> tuple[Any, str]:
    widget = await widgets_db.get_widget_by_key(pool, key) if key.startswith("wk_") else None
    if widget is None:
        raise NotFound("unknown widget key")
    origin = request.headers.get("origin", "")
    if origin not in widget["allowed_origins"]:
        raise Forbidden(f"this widget may not be embedded on {origin or 'a page without Origin'}")
    request.state.widget_origin = origin  # vetted: an error answered from here on carries CORS
    return widget, origin


def _cors(response: Response, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"


class _VisitorRoute(APIRoute):
    """A public widget route: its error responses (4xx from the flow, a rate limit, a body that
    does not validate) carry the same CORS headers as its successes when the page's Origin is one
    the widget allows, so the script can read the error and tell the visitor why. A refused
    Origin (or an unknown key) gets no CORS, as before."""

    def get_route_handler(self) -> Any:
        handle = super().get_route_handler()

        async def handle_with_cors(request: Request) -> Response:
            try:
                return await handle(request)
            except (AicoError, RequestValidationError) as err:
                origin = await _vetted_origin(request)
                if origin is None:
                    raise
                response = await _error_response(request, err)
                _cors(response, origin)
                return response

        return handle_with_cors


async def _vetted_origin(request: Request) -> str | None:
    """The request's Origin when the widget allows it: as the route vetted it, or (for a request
    refused before the route ran, e.g. a body that does not validate) looked up now."""
    origin = getattr(request.state, "widget_origin", None)
    if origin is not None:
        return str(origin)
    try:
        _, origin = await _widget_for(await app_state(request.app).pool(),
                                      str(request.path_params.get("key", "")), request)
    except AicoError:  # an unknown key or a foreign Origin: no CORS
        return None
    return origin


async def _error_response(request: Request, err: Exception) -> Response:
    """The app's own error response for `err` (the handler it installed for its class), so the
    body is the one every other route answers with."""
    for cls in type(err).__mro__:
        handler = request.app.exception_handlers.get(cls)
        if handler is not None:
            return await handler(request, err)
    raise err


# The public routes (what the widget script calls): served beside `router` (routes/__init__.py).
visitor_router = APIRouter(route_class=_VisitorRoute)


async def _limit(pool: Any, widget: Any, *, bucket: str, limit: int, setting: str) -> None:
    window = await take_rate_limit_slot(pool, org_id=widget["org_id"], bucket=bucket, limit=limit)
    if not window.allowed:
        raise RateLimited(f"rate limit reached: at most {limit} per minute"
                          f" (settings.limits.{setting}); retry in {window.retry_after_s} s",
                          limit=setting, retry_after_s=window.retry_after_s)


def _visitor(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@visitor_router.options("/v1/widget/{key}/{rest:path}")
async def widget_preflight(key: str, rest: str, request: Request, pool: PoolDep) -> Response:
    """CORS preflight: allowed origins only."""
    _, origin = await _widget_for(pool, key, request)
    response = Response(status_code=204)
    _cors(response, origin)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST"
    response.headers["Access-Control-Allow-Headers"] = "content-type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@visitor_router.post("/v1/widget/{key}/sessions", status_code=201)
async def start_visitor_session(key: str, request: Request, response: Response, pool: PoolDep,
                                state: StateDep, body: VisitorStart | None = None
                                ) -> dict[str, Any]:
    widget, origin = await _widget_for(pool, key, request)
    user_id = None
    if body is not None and body.visitor_token:
        user_id = visitor_user(_identity_secret(state, widget), body.visitor_token)
    limits = state.settings.limits
    await _limit(pool, widget, bucket=f"widget:{widget['id']}",
                 limit=limits.widget_sessions_per_minute_per_key,
                 setting="widget_sessions_per_minute_per_key")
    # Widget sessions count against the organization's session limit too, as API triggers do.
    await _limit(pool, widget, bucket="sessions", limit=limits.sessions_per_minute_per_org,
                 setting="sessions_per_minute_per_org")
    new = await create_session(pool, settings=state.settings, org_id=widget["org_id"],
                               flow_id=widget["flow_id"], channel="chat", variables={},
                               user_id=user_id)
    visitor_token = secrets.token_urlsafe(24)
    await widgets_db.insert_widget_session(pool, org_id=widget["org_id"], widget_id=widget["id"],
                                           session_id=new.id, visitor_token_hash=_hash(visitor_token))
    actions = [a async for a in step(pool, new.id, InboundEvent.session_started(),
                                     context=_context(state, pool))]
    messages, _ = messages_of(actions)
    _cors(response, origin)
    return {"session_id": new.id, "visitor_token": visitor_token, "messages": messages}


@visitor_router.get("/v1/widget/{key}")
async def widget_for_visitor(key: str, request: Request, response: Response,
                             pool: PoolDep) -> dict[str, Any]:
    """What the script offers on this page: chat always, the microphone when voice is on."""
    widget, origin = await _widget_for(pool, key, request)
    _cors(response, origin)
    response.headers["Cache-Control"] = "private, max-age=60"  # asked on every page view
    return {"voice": widget["voice"]}


@visitor_router.post("/v1/widget/{key}/voice", status_code=201, response_model=None)
async def start_visitor_call(key: str, request: Request, response: Response, pool: PoolDep,
                             state: StateDep, body: VisitorStart | None = None
                             ) -> dict[str, Any]:
    """A voice session for a visitor, and its single-use voice WebSocket URL. Past the Origin
    check, a refusal (429, 412, 401…) carries CORS too (`_VisitorRoute`), so the page can tell
    the visitor why."""
    widget, origin = await _widget_for(pool, key, request)
    return await _start_call(widget, origin, request, response, pool, state, body)


async def _start_call(widget: Any, origin: str, request: Request, response: Response,
                      pool: Any, state: Any, body: VisitorStart | None) -> dict[str, Any]:
    if not widget["voice"]:
        raise Forbidden("this widget has no voice: an admin turns it on with \"voice\": true"
                        " (POST /v1/widgets)")
    user_id = None
    if body is not None and body.visitor_token:
        user_id = visitor_user(_identity_secret(state, widget), body.visitor_token)
    limits = state.settings.limits
    await _limit(pool, widget, bucket=f"widget-voice:{widget['id']}:{_visitor(request)}",
                 limit=limits.widget_voice_calls_per_minute_per_visitor,
                 setting="widget_voice_calls_per_minute_per_visitor")
    await _limit(pool, widget, bucket=f"widget:{widget['id']}",
                 limit=limits.widget_sessions_per_minute_per_key,
                 setting="widget_sessions_per_minute_per_key")
    await _limit(pool, widget, bucket="sessions", limit=limits.sessions_per_minute_per_org,
                 setting="sessions_per_minute_per_org")
    await ensure_voice_capacity(pool, state, widget["org_id"])  # 429 before anything is stored
    new = await create_session(pool, settings=state.settings, org_id=widget["org_id"],
                               flow_id=widget["flow_id"], channel="voice", variables={},
                               user_id=user_id)
    # The row makes it the widget's session: the voice socket checks its Origin by it. The
    # call is reached only through its single-use URL, so this visitor token is never handed out.
    await widgets_db.insert_widget_session(
        pool, org_id=widget["org_id"], widget_id=widget["id"], session_id=new.id,
        visitor_token_hash=_hash(secrets.token_urlsafe(24)))
    info = state.voice_session_info or voice_session_info
    voice = await info(request, {"id": new.id, "org_id": new.org_id, "flow_id": new.flow_id,
                                 "flow_version_id": new.flow_version_id, "channel": "voice",
                                 "status": new.status})
    _cors(response, origin)
    return {"session_id": new.id, "voice": {"url": voice["url"],
                                            "expires_at": voice["expires_at"]}}


@visitor_router.post("/v1/widget/{key}/sessions/{session_id}/messages", response_model=None)
async def visitor_message(key: str, session_id: UUID, body: VisitorMessage, request: Request,
                          response: Response, pool: PoolDep, state: StateDep,
                          stream: bool = Query(default=False)
                          ) -> dict[str, Any] | StreamingResponse:
    widget, origin = await _widget_for(pool, key, request)
    owned = await widgets_db.get_widget_session(pool, org_id=widget["org_id"],
                                                widget_id=widget["id"], session_id=session_id)
    if owned is None or not hmac.compare_digest(owned["visitor_token_hash"],
                                                _hash(body.visitor_token)):
        raise NotFound(f"session {session_id} not found")
    await _limit(pool, widget, bucket=f"widget-visitor:{widget['id']}:{_visitor(request)}",
                 limit=state.settings.limits.widget_messages_per_minute_per_visitor,
                 setting="widget_messages_per_minute_per_visitor")
    actions = step(pool, session_id, InboundEvent.user_turn(body.text),
                   context=_context(state, pool))
    if stream:
        return StreamingResponse(
            _visitor_stream(actions), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": origin,
                     "Vary": "Origin"})
    messages, _ = messages_of([a async for a in actions])
    _cors(response, origin)
    return {"messages": messages}


async def _visitor_stream(actions: AsyncIterator[Action]) -> AsyncIterator[str]:
    """Server-Sent Events for the widget: `chunk` (text as it is produced, per message), then
    `final` with the joined messages, or `error`. Only what the visitor sees: no actions."""
    collected: list[Action] = []
    try:
        async for action in actions:
            collected.append(action)
            if isinstance(action, Say):
                yield _event("chunk", {"text": action.text, "message": action.node_id,
                                       "final": True})
            elif isinstance(action, SayChunk):
                yield _event("chunk", {"text": action.text, "message": action.stream_id,
                                       "final": action.final})
    except AicoError as exc:
        yield _event("error", {"message": exc.message})
        return
    yield _event("final", {"messages": messages_of(collected)[0]})


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _context(state: Any, pool: Any) -> StepContext:
    return StepContext(pool=pool, settings=state.settings, open_llm=state.llm_opener)


@router.get("/widget.js", include_in_schema=False)
async def widget_script() -> FileResponse:
    if not WIDGET_JS.exists():
        raise NotFound("the widget script is not built: run `npm run build` in frontend/"
                       " (it writes frontend/dist/widget.js)")
    return FileResponse(WIDGET_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=300"})

