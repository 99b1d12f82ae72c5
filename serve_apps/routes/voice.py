"""Voice calls over WebSocket, and live observers of a session.

* `GET /v1/sessions/{id}/voice?token=...` (WebSocket): a call. Browsers cannot set headers, so
  the call is authorised by the short-lived token returned when the voice session was created
  (`POST /v1/flows/{id}/sessions` with `"channel": "voice"` → `voice: {url, token,
  expires_at}`): an HMAC of the session id and expiry, valid only for that session.
* `GET /v1/sessions/{id}/live?token=...` (WebSocket): the transcript, timers and metrics of a
  live session for the dashboard, authorised by an API token (or OIDC access token) of the
  session's organization. Events reach observers on any API replica through PostgreSQL
  NOTIFY.

The protocol is written down in docs/voice-protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, WebSocket

from actors.host import LocalVoiceHost, RayVoiceHost, VoiceHost
from actors.transports import run_call
from actors.transports.websocket import ProtocolError, WebSocketTransport
from aico.errors import AicoError
from aico.signing import mint_voice_token, verify_voice_token
from db import sessions as sessions_db
from serve_apps.auth import authenticate
from serve_apps.deps import oidc_verifier
from serve_apps.state import ApiState, app_state

log = logging.getLogger("aico.routes.voice")
router = APIRouter(tags=["voice"])

LIVE_CHANNEL = "aico_live"
_LIVE_TYPES = {"transcript", "metrics", "interrupted", "timer", "dtmf", "end", "transfer",
               "agent_speech_started", "agent_speech_ended", "user_speech_started", "resumed"}


# --- tokens (minted and checked by aico.signing) -----------------------------------------------

async def voice_session_info(request: Request, row: Any) -> dict[str, Any]:
    """The `voice` field of a created voice session (the chat route's hook)."""
    state = app_state(request.app)
    if _in_serve_replica():
        # The first voice session of a replica starts its actor pool: the call finds it warm.
        await voice_host(state)
    ttl = state.settings.voice.token_ttl_s
    token, expires = mint_voice_token(state.settings, row["id"], ttl_s=ttl)
    base = str(request.base_url).rstrip("/")
    if state.settings.public_url:
        base = state.settings.public_url.rstrip("/")
    ws_base = "wss://" + base[8:] if base.startswith("https://") else \
        "ws://" + base.removeprefix("http://")
    return {"url": f"{ws_base}/v1/sessions/{row['id']}/voice?token={token}", "token": token,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()}


# --- where calls run -------------------------------------------------------------------------

async def voice_host(state: ApiState) -> VoiceHost:
    host = state.extras.get("voice_host")
    if host is None:
        try:
            import ray

            on_ray = ray.is_initialized()
        except ImportError:
            on_ray = False
        if on_ray:
            from actors.pool import VoiceActorPool

            pool = VoiceActorPool(settings=state.settings.voice)
            pool.fill()
            host = RayVoiceHost(pool)
        else:
            host = LocalVoiceHost(await state.pool(), state.settings,
                                  open_llm=state.extras.get("open_llm"))
        state.extras["voice_host"] = host
    return host


def _in_serve_replica() -> bool:
    try:
        from ray import serve

        serve.get_replica_context()
    except Exception:  # noqa: BLE001 - not in Serve (tests, a plain uvicorn): nothing to warm
        return False
    return True


async def _refuse(ws: WebSocket, code: int, error: str, message: str) -> None:
    await ws.accept()
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps({"type": "error", "code": error, "message": message}))
        await ws.close(code=code, reason=message[:100])


# --- the call --------------------------------------------------------------------------------

@router.websocket("/v1/sessions/{session_id}/voice")
async def voice_call(ws: WebSocket, session_id: UUID, token: str = Query(default="")) -> None:
    connected_at = time.monotonic()
    state = app_state(ws.app)
    if not verify_voice_token(state.settings, session_id, token):
        await _refuse(ws, 4401, "unauthorized", "invalid or expired voice token")
        return
    pool = await state.pool()
    row = await sessions_db.get_session_brief(pool, session_id=session_id)
    if row is None or row["channel"] != "voice":
        await _refuse(ws, 4404, "not_found", f"voice session {session_id} not found")
        return
    if row["status"] in ("ended", "failed"):
        await _refuse(ws, 4409, "conflict", f"session {session_id} has {row['status']}")
        return
    await ws.accept()
    transport = WebSocketTransport(ws)
    try:
        await transport.handshake()
    except ProtocolError as err:
        await transport.send_event({"type": "error", "code": "bad_start", "message": str(err)})
        await transport.close("protocol error")
        return

    async def observe(event: dict[str, Any]) -> None:
        if event.get("type") in _LIVE_TYPES:
            await _publish(pool, session_id, event)

    try:
        host = await voice_host(state)
        await run_call(transport, host, session_id, connected_at=connected_at,
                       observe=observe)
    except AicoError as err:
        body = err.to_body()
        await transport.send_event({"type": "error", "code": body.pop("error"), **body})
        await transport.close("error")
    except Exception as err:
        log.exception("voice call %s failed", session_id)
        await transport.send_event({"type": "error", "code": "internal",
                                    "message": type(err).__name__})
        await transport.close("error")


async def _publish(pool: Any, session_id: UUID, event: dict[str, Any]) -> None:
    payload = {"session_id": str(session_id), **event}
    if isinstance(payload.get("text"), str):
        payload["text"] = payload["text"][:2000]
    await pool.execute("SELECT pg_notify($1, $2)", LIVE_CHANNEL, json.dumps(payload, default=str))


# --- observers -------------------------------------------------------------------------------

@router.websocket("/v1/sessions/{session_id}/live")
async def live_session(ws: WebSocket, session_id: UUID, token: str = Query(default="")) -> None:
    state = app_state(ws.app)
    pool = await state.pool()
    try:
        principal = await authenticate(token, pool=pool, settings=state.settings,
                                       oidc_verifier=oidc_verifier(state))
    except AicoError as err:
        await _refuse(ws, 4401, "unauthorized", err.message)
        return
    row = await sessions_db.get_session(pool, org_id=principal.org_id, session_id=session_id)
    if row is None:
        await _refuse(ws, 4404, "not_found", f"session {session_id} not found")
        return
    await ws.accept()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
    sid = str(session_id)

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if event.get("session_id") == sid and not queue.full():
            queue.put_nowait(event)

    async with pool.acquire() as conn:
        await conn.add_listener(LIVE_CHANNEL, on_notify)
        try:
            await ws.send_text(json.dumps({"type": "hello", "session_id": sid,
                                           "status": row["status"]}))
            receiver = asyncio.create_task(ws.receive())  # completes when the client leaves
            while True:
                getter = asyncio.create_task(queue.get())
                await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    message = receiver.result() if not receiver.cancelled() else {}
                    if message.get("type") == "websocket.disconnect":
                        break
                    receiver = asyncio.create_task(ws.receive())
                    continue
                event = getter.result()
                await ws.send_text(json.dumps(event))
                if event.get("type") == "end":
                    break
            receiver.cancel()
        except Exception as err:  # noqa: BLE001 - the observer went away
            log.debug("observer of %s left: %s", sid, err)
        finally:
            await conn.remove_listener(LIVE_CHANNEL, on_notify)
    with contextlib.suppress(Exception):
        await ws.close()
