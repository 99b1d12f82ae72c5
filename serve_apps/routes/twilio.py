"""Twilio: the Voice webhook, call status callbacks and the Media Streams WebSocket.

* `POST /v1/channels/twilio/voice` — a number's Voice webhook (form-encoded). Its
  `X-Twilio-Signature` is checked with the `twilio` library's `RequestValidator` against the
  auth token of the number the call names (`To` for a call to us, `From` for one we placed),
  over the URL Twilio was given (`AICO_PUBLIC_URL` + the path) and the form, before anything
  is looked at or stored: 403 and nothing started otherwise. A `CallSid` answered before starts
  nothing (an empty `<Response/>`). Otherwise the call's session is started by the session
  service and the answer is `<Connect><Stream url="wss://…/v1/channels/twilio/media">` with
  the session and a single-use stream token as `<Parameter>`s. A call whose flow cannot run
  (missing secrets, nothing published) is recorded failed and hears a short apology.
* `POST /v1/channels/twilio/status` — status callbacks, verified the same way; a final status
  (completed, busy, no-answer, failed, canceled) ends the call and its session.
* `GET /v1/channels/twilio/media` (WebSocket) — Twilio's Media Streams, feeding the same
  voice pipeline as the voice WebSocket (`actors.transports.twilio_media`), holding the
  session's lease like a voice call (the organization's concurrent-call cap, the sweeper).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
from fastapi import APIRouter, Request, Response, WebSocket

from actors.transports import HOST_FAILED, run_call
from actors.transports.twilio_media import StreamRefused, TwilioMediaTransport
from aico.errors import AicoError, BadRequest, Forbidden
from db import phone_numbers as numbers_db
from db import voice_leases as leases_db
from flows.phone_calls import (
    APOLOGY,
    answer_inbound_call,
    answer_outbound_call,
    attach_stream,
    record_call_status,
    transfer_call,
)
from flows.telephony import PhoneNumber
from flows.twilio_calls import (
    PROVIDER,
    STATUS_PATH,
    VOICE_PATH,
    apology_twiml,
    empty_twiml,
    media_stream_url,
    signature_valid,
    stream_twiml,
    webhook_url,
)
from providers.secrets import load_secrets
from serve_apps.call_lease import (
    keep_lease,
    live_observer,
    new_holder,
    record_failure,
    release_lease,
)
from serve_apps.deps import PoolDep, StateDep
from serve_apps.routes.voice import start_voice_sweeper, voice_host
from serve_apps.state import ApiState, app_state

log = logging.getLogger("aico.routes.twilio")
router = APIRouter(prefix="/v1/channels/twilio", tags=["twilio"])

_SID = re.compile(r"^[A-Za-z]{2}[0-9a-fA-F]{32}$")
MAX_FORM_FIELDS = 200


def _xml(twiml: str) -> Response:
    return Response(content=twiml, media_type="application/xml")


async def verified_form(request: Request, pool: asyncpg.Pool, state: ApiState,
                        path: str) -> tuple[PhoneNumber, dict[str, str]]:
    """The number whose auth token signed this request, and its form; Forbidden (403) when no
    configured Twilio number it names signed it."""
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise Forbidden("missing X-Twilio-Signature header")
    raw = await request.body()
    try:
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                max_num_fields=MAX_FORM_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise Forbidden("X-Twilio-Signature does not match this request") from None
    url = webhook_url(state.settings, path)
    if request.url.query:
        url += "?" + request.url.query
    # The form is only searched for the numbers it names here, to know whose token to try.
    candidates = [params.get(k, "") for k in ("To", "From")]
    for candidate in dict.fromkeys(c for c in candidates if c and len(c) <= 32):
        row = await numbers_db.find_phone_number(pool, candidate)
        if row is None or row["provider"] != PROVIDER:
            continue
        number = PhoneNumber.from_row(row)
        name = number.secret_names().get("auth_token_secret")
        if not name:
            continue
        token = (await load_secrets(pool, org_id=number.org_id, names=[name],
                                    settings=state.settings)).get(name)
        if token and signature_valid(token, url, params, signature) \
                and params.get("AccountSid") == number.settings.get("account_sid"):
            return number, params
    raise Forbidden("X-Twilio-Signature does not match the auth token of a configured Twilio"
                    " number this request names")


def _call_sid(params: dict[str, str]) -> str:
    call_sid = params.get("CallSid", "")
    if not _SID.match(call_sid):
        raise BadRequest("CallSid: expected Twilio's call id (CA + 32 hex digits)")
    return call_sid


@router.post("/voice")
async def voice_webhook(request: Request, pool: PoolDep, state: StateDep) -> Response:
    number, params = await verified_form(request, pool, state, VOICE_PATH)
    call_sid = _call_sid(params)
    settings = state.settings
    if params.get("Direction", "inbound").startswith("outbound") \
            and params.get("From") == number.number:
        answer = await answer_outbound_call(pool, settings=settings, number=number,
                                            call_ref=call_sid)
    else:
        answer = await answer_inbound_call(pool, settings=settings, number=number,
                                           call_ref=call_sid, caller=params.get("From", ""))
    if answer.kind == "stream":
        start_voice_sweeper(state, pool)
        await voice_host(state)  # the replica's call actors warm while Twilio connects
        return _xml(stream_twiml(media_stream_url(settings), answer.stream_parameters))
    if answer.kind == "refused":
        return _xml(apology_twiml(APOLOGY))
    return _xml(empty_twiml())  # a replay: nothing new starts


@router.post("/status")
async def status_callback(request: Request, pool: PoolDep, state: StateDep) -> Response:
    _number, params = await verified_form(request, pool, state, STATUS_PATH)
    status = params.get("CallStatus", "")
    if not status:
        raise BadRequest("CallStatus: missing")
    detail = {k: params[k] for k in ("CallDuration", "SipResponseCode", "AnsweredBy")
              if params.get(k)}
    await record_call_status(pool, settings=state.settings, provider=PROVIDER,
                             call_ref=_call_sid(params), status=status, detail=detail)
    return Response(status_code=204)


# --- the media stream ----------------------------------------------------------------------------

# How a refused stream is closed (Twilio logs the code): by the refusal's HTTP status.
STREAM_CLOSE_CODES = {401: 4401, 404: 4404, 409: 4409}


@router.websocket("/media")
async def media_stream(ws: WebSocket) -> None:
    """Twilio's Media Streams connection: authorised by the stream token in its `start`."""
    connected_at = time.monotonic()
    state = app_state(ws.app)
    settings = state.settings
    await ws.accept()
    transport = TwilioMediaTransport(ws, limits=settings.limits)
    try:
        start = await transport.handshake()
    except StreamRefused as err:
        await transport.close(str(err), code=1008)
        return
    pool = await state.pool()
    start_voice_sweeper(state, pool)
    try:
        call = await attach_stream(pool, settings=settings, provider=PROVIDER,
                                   call_ref=start.call_sid, parameters=start.parameters)
    except AicoError as err:
        log.warning("media stream for %s refused: %s", start.call_sid, err.message)
        await transport.close(err.code, code=STREAM_CLOSE_CODES.get(err.status, 1008))
        return
    await carry_media_stream(state, pool, transport, call, connected_at=connected_at)


async def carry_media_stream(state: ApiState, pool: asyncpg.Pool,
                             transport: TwilioMediaTransport, call: Any, *,
                             connected_at: float) -> None:
    """A phone call's media stream (Twilio's or Telnyx's) carried to its end: the session's
    lease held like a voice call's, the flow's transfers through the carrier."""
    session_id, org_id = call["session_id"], call["org_id"]
    settings = state.settings
    limits = settings.limits
    holder = new_holder()
    outcome = await leases_db.acquire_voice_leases_row(
        pool, org_id=org_id, session_id=session_id, holder=holder,
        ttl_s=limits.voice_lease_ttl_s, max_per_org=limits.voice_calls_per_org)
    if outcome in ("busy", "org_cap"):
        log.warning("media stream of session %s refused: %s", session_id, outcome)
        await transport.close(outcome, code=4423 if outcome == "busy" else 4429)
        return

    async def on_transfer(event: dict[str, Any]) -> None:
        await transfer_call(pool, settings=settings, session_id=session_id,
                            to=str(event.get("to") or ""), mode=str(event.get("mode") or "cold"))

    async def lease_lost() -> None:
        await transport.close("lease_lost", code=1011)

    transport.on_transfer = on_transfer
    started = False
    heartbeat = asyncio.create_task(keep_lease(pool, session_id, holder,
                                               limits.voice_lease_ttl_s, on_lost=lease_lost))
    try:
        host = await voice_host(state)
        started = True
        reason = await run_call(transport, host, session_id, connected_at=connected_at,
                                observe=live_observer(pool, org_id, session_id))
        if reason.startswith(HOST_FAILED):
            await record_failure(pool, session_id, reason)
    except Exception as err:
        log.exception("phone call %s failed", session_id)
        await transport.close("error", code=1011)
        await record_failure(pool, session_id, f"{HOST_FAILED}: {type(err).__name__}")
    finally:
        heartbeat.cancel()
        with contextlib.suppress(BaseException):
            await heartbeat
        await release_lease(pool, session_id, holder, started=started)
