"""Telnyx: the TeXML voice webhook and the media-streaming WebSocket.

* `POST /v1/channels/telnyx/voice` — a Telnyx number's TeXML webhook (form-encoded, as TeXML
  sends it). Signed by Telnyx with Ed25519 over `timestamp|body` (`telnyx-signature-ed25519`,
  `telnyx-timestamp`): the form is only searched for the number it names (`To`), whose
  settings hold the account's public key; the signature and its 5-minute window are checked
  over the raw bytes before anything is stored or started (403 otherwise, also for a webhook
  replayed after the window). A `CallSid` answered before starts nothing. Otherwise the call's
  session is started by the session service and the answer is a TeXML `<Start><Stream>` to
  the media socket, the session and a single-use token in its URL. A call whose flow cannot
  run is recorded failed and hears a short apology.
* `GET /v1/channels/telnyx/media` (WebSocket) — Telnyx's media streaming (PCMU 8 kHz,
  bidirectional RTP), feeding the same voice pipeline as every call, holding the session's
  lease like a voice call.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response, WebSocket

from actors.transports.telnyx_media import TelnyxMediaTransport
from actors.transports.twilio_media import StreamRefused
from aico.errors import AicoError, BadRequest, Forbidden
from db import phone_numbers as numbers_db
from flows.phone_calls import APOLOGY, answer_inbound_call, attach_stream
from flows.telephony import PhoneNumber
from flows.telnyx_calls import (
    PROVIDER,
    empty_texml,
    media_url,
    say_and_hang_up_texml,
    stream_texml,
)
from flows.telnyx_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_telnyx_signature
from serve_apps.deps import PoolDep, StateDep
from serve_apps.routes.twilio import STREAM_CLOSE_CODES, carry_media_stream
from serve_apps.routes.voice import start_voice_sweeper, voice_host
from serve_apps.state import app_state

log = logging.getLogger("aico.routes.telnyx")
router = APIRouter(prefix="/v1/channels/telnyx", tags=["telnyx"])

_CALL_SID = re.compile(r"^[A-Za-z0-9:_=-]{8,128}$")
MAX_FORM_FIELDS = 200


def _xml(texml: str) -> Response:
    return Response(content=texml, media_type="application/xml")


@router.post("/voice")
async def voice_webhook(request: Request, pool: PoolDep, state: StateDep) -> Response:
    raw = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise Forbidden(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                max_num_fields=MAX_FORM_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise Forbidden(f"{SIGNATURE_HEADER} does not match this request") from None
    # The form is only searched for the number it names, to know whose key to verify with.
    called = params.get("To", "")
    row = await numbers_db.find_phone_number(pool, called) if 0 < len(called) <= 32 else None
    if row is None or row["provider"] != PROVIDER or not row["settings"].get("public_key"):
        raise Forbidden(f"{SIGNATURE_HEADER}: the call names no Telnyx number with a public key")
    number = PhoneNumber.from_row(dict(row))
    verify_telnyx_signature(raw, signature=signature, timestamp=timestamp,
                            public_key=str(number.settings["public_key"]))
    call_sid = params.get("CallSid", "")
    if not _CALL_SID.match(call_sid):
        raise BadRequest("CallSid: expected Telnyx's TeXML call id")
    answer = await answer_inbound_call(pool, settings=state.settings, number=number,
                                       call_ref=call_sid, caller=params.get("From", ""))
    if answer.kind == "stream":
        start_voice_sweeper(state, pool)
        await voice_host(state)  # the replica's call actors warm while Telnyx connects
        return _xml(stream_texml(media_url(state.settings, call_sid, answer.stream_parameters)))
    if answer.kind == "refused":
        return _xml(say_and_hang_up_texml(APOLOGY))
    return _xml(empty_texml())  # a replay: nothing new starts


@router.websocket("/media")
async def media_stream(ws: WebSocket) -> None:
    """Telnyx's media stream: authorised by the single-use token in its URL."""
    connected_at = time.monotonic()
    state = app_state(ws.app)
    settings = state.settings
    await ws.accept()
    transport = TelnyxMediaTransport(ws, limits=settings.limits)
    try:
        await transport.handshake()
    except StreamRefused as err:
        await transport.close(str(err), code=1008)
        return
    pool = await state.pool()
    start_voice_sweeper(state, pool)
    query = ws.query_params
    try:
        call = await attach_stream(
            pool, settings=settings, provider=PROVIDER, call_ref=query.get("call", ""),
            parameters={"session": query.get("session", ""), "token": query.get("token", "")})
    except AicoError as err:
        log.warning("Telnyx media stream refused: %s", err.message)
        await transport.close(err.code, code=STREAM_CLOSE_CODES.get(err.status, 1008))
        return
    await carry_media_stream(state, pool, transport, call, connected_at=connected_at)
