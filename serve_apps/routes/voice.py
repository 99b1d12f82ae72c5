"""Voice calls over WebSocket, and live observers of a session.

* `GET /v1/sessions/{id}/voice?token=...` (WebSocket): a call. Browsers cannot set headers, so
  the call is authorised by the short-lived token returned when the voice session was created
  (`POST /v1/flows/{id}/sessions` with `"channel": "voice"` → `voice: {url, token,
  expires_at}`), signed for that session only (aico.signing). A token attaches ONCE; a fresh
  one comes from `POST /v1/sessions/{id}/voice-token`. One socket carries a session's call: the
  replica that accepted it holds the session's lease in PostgreSQL and renews it while the call
  lives; another socket is refused (4423), and so is one past the organization's cap on
  concurrent calls (4429, and 429 at session creation).
* `GET /v1/sessions/{id}/live?token=...` (WebSocket): the transcript, timers and metrics of a
  live session for the dashboard, authorised by an API token (or OIDC access token) of the
  session's organization. Events reach observers on any API replica through PostgreSQL
  NOTIFY, fanned out by one listener per replica (serve_apps/live.py).

The protocol and its close codes are written down in docs/voice-protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query, Request, WebSocket

from actors.host import LocalVoiceHost, RayVoiceHost, VoiceHost
from actors.outbox import items_until
from actors.transports import HOST_FAILED, run_call
from actors.transports.websocket import CloseCode, ProtocolError, WebSocketTransport
from aico.errors import AicoError, Conflict, NotFound
from aico.signing import mint_voice_token, verify_voice_token
from aico.voice_messages import CallError, ObserverHello, to_wire
from db import sessions as sessions_db
from db import voice_leases as leases_db
from db import widgets as widgets_db
from db.pool import app_database_url
from serve_apps.auth import authenticate
from serve_apps.call_lease import (
    LIVE_TYPES,
    keep_lease,
    new_holder,
    record_failure,
    release_lease,
)
from serve_apps.deps import EditorDep, PoolDep, StateDep, oidc_verifier
from serve_apps.live import LiveHub, TooManyObservers, publish_live_event
from serve_apps.media_port import media_ws_base
from serve_apps.state import ApiState, app_state, in_serve_replica
from serve_apps.voice_sweeper import VoiceSweeper

log = logging.getLogger("aico.routes.voice")
router = APIRouter(tags=["voice"])



class TooManyCalls(AicoError):
    status, code = 429, "too_many_calls"


# --- tokens (minted and checked by aico.signing) -----------------------------------------------

def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _voice_field(request: Request, state: ApiState, session_id: UUID | str, token: str,
                 expires: int) -> dict[str, Any]:
    ws_base = media_ws_base(state.settings, state.media_port, request.url.hostname)
    if ws_base is None:  # through the API's own URL (the Serve proxy)
        base = str(request.base_url).rstrip("/")
        if state.settings.public_url:
            base = state.settings.public_url.rstrip("/")
        ws_base = "wss://" + base[8:] if base.startswith("https://") else \
            "ws://" + base.removeprefix("http://")
    return {"url": f"{ws_base}/v1/sessions/{session_id}/voice?token={token}", "token": token,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()}


async def voice_session_info(request: Request, row: Any) -> dict[str, Any]:
    """The `voice` field of a created voice session (the chat route's hook)."""
    state = app_state(request.app)
    start_voice_sweeper(state, await state.pool())
    if in_serve_replica():
        # The first voice session of a replica starts its actor pool: the call finds it warm.
        await voice_host(state)
    token, expires = mint_voice_token(state.settings, row["id"],
                                      ttl_s=state.settings.voice.token_ttl_s)
    return _voice_field(request, state, row["id"], token, expires)


async def ensure_voice_capacity(pool: asyncpg.Pool, state: ApiState, org_id: UUID) -> None:
    """429 before a voice session is created when the organization's calls are at the cap."""
    cap = state.settings.limits.voice_calls_per_org
    live = await leases_db.count_voice_leases_live(pool, org_id=org_id)
    if live >= cap:
        raise TooManyCalls(f"the organization has {live} live voice calls, its limit"
                           f" (settings.limits.voice_calls_per_org = {cap})",
                           details={"limit": "voice_calls_per_org", "live": live, "cap": cap})


@router.post("/v1/sessions/{session_id}/voice-token")
async def new_voice_token(session_id: UUID, request: Request, principal: EditorDep,
                          pool: PoolDep, state: StateDep) -> dict[str, Any]:
    """A fresh single-use token for a voice session that has not ended (the first one expired
    unused, or the caller dropped and reconnects)."""
    row = await sessions_db.get_session(pool, org_id=principal.org_id, session_id=session_id)
    if row is None or row["channel"] != "voice":
        raise NotFound(f"voice session {session_id} not found")
    if row["status"] in ("ended", "failed"):
        raise Conflict(f"session {session_id} has {row['status']}: it takes no more calls")
    ttl = state.settings.voice.token_ttl_s
    token, expires = mint_voice_token(state.settings, session_id, ttl_s=ttl)
    for shave in range(1, 4):
        # A token is its session and expiry second: one minted in the same second as a token
        # that has attached already would be that token, so move its expiry a second earlier.
        if not await leases_db.get_voice_token_uses_exists(pool, org_id=principal.org_id,
                                                           token_id=_token_id(token)):
            break
        token, expires = mint_voice_token(state.settings, session_id, ttl_s=ttl - shave)
    return _voice_field(request, state, session_id, token, expires)


# --- where calls run, and the replica's voice services ---------------------------------------

async def voice_host(state: ApiState) -> VoiceHost:
    host = state.voice_host
    if host is None:
        try:
            import ray

            on_ray = ray.is_initialized()
        except ImportError:
            on_ray = False
        if on_ray:
            from actors.call_placement import CallPlacement

            actors = CallPlacement(state.settings.voice)  # per-node supervisors own the calls
            actors.fill()
            host = RayVoiceHost(actors, settings=state.settings)
        else:
            host = LocalVoiceHost(await state.pool(), state.settings, open_llm=state.llm_opener)
        state.voice_host = host
    return host


def live_hub(state: ApiState, pool: asyncpg.Pool) -> LiveHub:
    hub = state.live_hub
    if hub is None:
        settings = state.settings
        dsn = app_database_url(settings)  # the application role, like the pool's connections
        hub = LiveHub(pool, max_per_session=settings.limits.live_observers_per_session,
                      connect=lambda: asyncpg.connect(dsn))
        state.live_hub = hub
    return hub


def start_voice_sweeper(state: ApiState, pool: asyncpg.Pool) -> None:
    sweeper = state.voice_sweeper
    if sweeper is None:
        sweeper = VoiceSweeper(pool, every_s=state.settings.limits.voice_sweep_every_s,
                               call_alive=_call_alive_on_ray(state), settings=state.settings)
        state.voice_sweeper = sweeper
    sweeper.start()


def _call_alive_on_ray(state: ApiState) -> Any:
    """On Ray, whether a call actor still carries a session (it outlives this replica's socket:
    the sweeper leaves such a session for a reconnect); None without Ray."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None

    async def call_alive(session_id: UUID) -> bool:
        host = await voice_host(state)
        find = getattr(getattr(host, "actor_pool", None), "find", None)
        return find is not None and await find(str(session_id)) is not None

    return call_alive


async def _refuse(ws: WebSocket, code: int, error: str, message: str) -> None:
    await ws.accept()
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps(to_wire(CallError(code=error, message=message))))
        await ws.close(code=code, reason=message[:100])


# --- the call --------------------------------------------------------------------------------

@router.websocket("/v1/sessions/{session_id}/voice")
async def voice_call(ws: WebSocket, session_id: UUID, token: str = Query(default="")) -> None:
    connected_at = time.monotonic()
    state = app_state(ws.app)
    settings = state.settings
    if not verify_voice_token(settings, session_id, token):
        await _refuse(ws, CloseCode.UNAUTHORIZED, "unauthorized", "invalid or expired voice token")
        return
    pool = await state.pool()
    start_voice_sweeper(state, pool)
    row = await sessions_db.get_session_brief(pool, session_id=session_id)
    if row is None or row["channel"] != "voice":
        await _refuse(ws, CloseCode.NOT_FOUND, "not_found", f"voice session {session_id} not found")
        return
    if row["status"] in ("ended", "failed"):
        await _refuse(ws, CloseCode.ENDED, "conflict", f"session {session_id} has {row['status']}")
        return
    org_id = row["org_id"]
    # A web widget's call: the page's Origin must be on the widget's allow-list, checked before
    # the token is spent, so that nothing starts and the visitor's own page can still use it.
    origins = await widgets_db.get_widget_session_origins(pool, org_id=org_id,
                                                          session_id=session_id)
    if origins is not None and ws.headers.get("origin", "") not in origins:
        page = ws.headers.get("origin") or "a page without Origin"
        await _refuse(ws, CloseCode.POLICY, "origin_refused",
                      f"this widget may not be used on {page}")
        return
    first_use = await leases_db.insert_voice_token_uses_row(
        pool, token_id=_token_id(token), org_id=org_id, session_id=session_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.voice.token_ttl_s))
    if not first_use:
        await _refuse(ws, CloseCode.UNAUTHORIZED, "token_used",
                      "this voice token has attached already: ask POST"
                      f" /v1/sessions/{session_id}/voice-token for a fresh one")
        return
    limits = settings.limits
    holder = new_holder()
    outcome = await leases_db.acquire_voice_leases_row(
        pool, org_id=org_id, session_id=session_id, holder=holder,
        ttl_s=limits.voice_lease_ttl_s, max_per_org=limits.voice_calls_per_org)
    if outcome == "busy":
        await _refuse(ws, CloseCode.BUSY, "call_in_progress",
                      f"another connection carries session {session_id}'s call")
        return
    if outcome == "org_cap":
        await _refuse(ws, CloseCode.TOO_MANY, "too_many_calls",
                      "the organization is at its limit of concurrent voice calls"
                      f" ({limits.voice_calls_per_org})")
        return
    call = _CallProgress()
    try:
        await _carry_call(ws, state, pool, session_id, org_id, holder, connected_at, call)
    finally:
        await release_lease(pool, session_id, holder, started=call.started)


class _CallProgress:
    started = False  # the pipeline was asked to start: from then on the session must end


async def _carry_call(ws: WebSocket, state: ApiState, pool: asyncpg.Pool, session_id: UUID,
                      org_id: UUID, holder: str, connected_at: float,
                      call: _CallProgress) -> None:
    await ws.accept()
    transport = WebSocketTransport(ws, limits=state.settings.limits)
    try:
        await transport.handshake()
    except ProtocolError as err:
        await transport.send_event(CallError(code="bad_start", message=str(err)))
        await transport.close("protocol error")
        return

    ended: list[str] = []

    async def observe(event: dict[str, Any]) -> None:
        if event.get("type") == "end":
            ended.append(str(event.get("reason")))
        if event.get("type") in LIVE_TYPES:
            await publish_live_event(pool, org_id=org_id, session_id=session_id, event=event)

    async def lease_lost() -> None:
        await transport.refuse(CloseCode.INTERNAL, "lease_lost",
                               "this call's session was closed by the sweeper")

    heartbeat = asyncio.create_task(keep_lease(pool, session_id, holder,
                                               state.settings.limits.voice_lease_ttl_s,
                                               on_lost=lease_lost))
    try:
        host = await voice_host(state)
        call.started = True
        reason = await run_call(transport, host, session_id, connected_at=connected_at,
                                observe=observe)
        if reason.startswith(HOST_FAILED):  # the caller was told (call_failed, 1011)
            await record_failure(pool, session_id, reason)
        if not ended:
            # The caller hung up (or was cut off): observers learn the call is over too.
            with contextlib.suppress(Exception):
                await publish_live_event(pool, org_id=org_id, session_id=session_id,
                                         event={"type": "end", "reason": reason})
    except AicoError as err:
        body = err.to_body()
        await transport.send_event(CallError(code=body.pop("error"), **body))
        await transport.close("error")
    except Exception as err:
        log.exception("voice call %s failed", session_id)
        await transport.send_event(CallError(code="internal", message=type(err).__name__))
        await transport.close("error", code=CloseCode.INTERNAL)
        await record_failure(pool, session_id, f"{HOST_FAILED}: {type(err).__name__}")
    finally:
        heartbeat.cancel()
        with contextlib.suppress(BaseException):
            await heartbeat


# --- observers -------------------------------------------------------------------------------

@router.websocket("/v1/sessions/{session_id}/live")
async def live_session(ws: WebSocket, session_id: UUID, token: str = Query(default="")) -> None:
    state = app_state(ws.app)
    pool = await state.pool()
    start_voice_sweeper(state, pool)
    try:
        principal = await authenticate(token, pool=pool, settings=state.settings,
                                       oidc_verifier=oidc_verifier(state))
    except AicoError as err:
        await _refuse(ws, CloseCode.UNAUTHORIZED, "unauthorized", err.message)
        return
    row = await sessions_db.get_session(pool, org_id=principal.org_id, session_id=session_id)
    if row is None:
        await _refuse(ws, CloseCode.NOT_FOUND, "not_found", f"session {session_id} not found")
        return
    sid = str(session_id)
    try:
        async with live_hub(state, pool).subscribe(session_id) as events:
            await ws.accept()
            await ws.send_text(json.dumps(to_wire(ObserverHello(session_id=sid,
                                                                status=row["status"]))))
            async for batch in items_until(events, _disconnected(ws)):
                for event in batch:
                    await ws.send_text(json.dumps(event))
                    if event.get("type") == "end":
                        break
                else:
                    continue
                break
    except TooManyObservers as err:
        await _refuse(ws, CloseCode.TOO_MANY, err.code, err.message)
        return
    except Exception as err:  # noqa: BLE001 - the observer went away
        log.debug("observer of %s left: %s", sid, err)
    with contextlib.suppress(Exception):
        await ws.close()


async def _disconnected(ws: WebSocket) -> None:
    """Until the observer leaves (what it sends is ignored)."""
    with contextlib.suppress(Exception):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
