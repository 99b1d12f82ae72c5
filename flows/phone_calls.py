"""A phone call's life, whatever the carrier: answered (inbound) or placed (outbound), its media
stream attached once, its statuses recorded, transferred through the toll-fraud guard, ended.

    answer = await answer_inbound_call(pool, settings=s, number=n, call_ref=sid,
                                       caller="+12125550123")
    # answer.kind: "stream" (answer.stream_parameters go on the media stream), "replay"
    # (this call id was answered before: nothing new starts) or "refused" (recorded; the
    # caller hears an apology)
    call = await attach_stream(pool, settings=s, provider="twilio", call_ref=sid,
                               parameters=start.parameters)          # once per token
    await record_call_status(pool, settings=s, provider="twilio", call_ref=sid,
                             status="completed")                     # ends the session
    placed = await place_outbound_call(pool, settings=s, org_id=o, flow_id=f,
                                       from_number="+1555…", to="+1212…", variables={})
    moved = await transfer_call(pool, settings=s, session_id=sid, to="+1212…", mode="cold")

The stream token is a voice token (`aico.signing`) for the call's session, recorded at its
first use (`voice_token_uses`): a replayed media stream is refused.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg

from aico.errors import AicoError, Conflict, NotFound, Unauthorized, ValidationFailed
from aico.settings import Settings
from aico.signing import mint_voice_token, verify_voice_token
from db import phone_calls as calls_db
from db import phone_numbers as numbers_db
from db import sessions as sessions_db
from db import voice_leases as leases_db
from flows.events import InboundEvent
from flows.executor import run_step
from flows.sessions import create_session
from flows.telephony import (
    DestinationRefused,
    PhoneNumber,
    carrier_for,
    check_destination,
    guard_outbound_call,
    load_dialing_policy,
    normalize_number,
    number_secrets,
)

log = logging.getLogger("aico.flows.phone_calls")

APOLOGY = "Sorry, this number cannot take your call right now. Goodbye."


@dataclass(frozen=True)
class CallAnswer:
    kind: Literal["stream", "replay", "refused"]
    call_id: UUID | None = None
    session_id: UUID | None = None
    stream_parameters: dict[str, str] = field(default_factory=dict)
    failure: dict[str, Any] | None = None


def stream_parameters(settings: Settings, session_id: UUID) -> dict[str, str]:
    """What the carrier hands back on the media stream: the session and a single-use token."""
    token, _ = mint_voice_token(settings, session_id, ttl_s=settings.telephony.stream_token_ttl_s)
    return {"session": str(session_id), "token": token}


def call_variables(number: PhoneNumber, *, caller: str, called: str) -> dict[str, Any]:
    """The call's facts as session variables a flow may read (as the LiveKit path sets them)."""
    return {"caller": caller, "called": called, "call_provider": number.provider}


async def answer_inbound_call(pool: asyncpg.Pool, *, settings: Settings, number: PhoneNumber,
                              call_ref: str, caller: str) -> CallAnswer:
    """A verified webhook for a call reaching `number`: record it once by the carrier's id,
    start its session (the one session service), and say how to stream it."""
    row = await calls_db.insert_phone_calls_row(
        pool, org_id=number.org_id, number_id=number.id, provider=number.provider,
        direction="inbound", call_ref=call_ref, from_number=caller[:32],
        to_number=number.number, status="in-progress", answered=True)
    if row is None:
        return CallAnswer(kind="replay")
    try:
        new = await create_session(
            pool, settings=settings, org_id=number.org_id, flow_id=number.flow_id,
            channel="phone", user_id=caller[:32] or None,
            variables=call_variables(number, caller=caller[:32], called=number.number))
    except AicoError as err:
        failure = {"error": err.code, "message": err.message}
        await calls_db.update_phone_calls_row(pool, org_id=number.org_id, call_id=row["id"],
                                              status="failed", failure=failure)
        log.warning("call %s to %s refused: %s", call_ref, number.number, err.message)
        return CallAnswer(kind="refused", call_id=row["id"], failure=failure)
    await calls_db.update_phone_calls_row(pool, org_id=number.org_id, call_id=row["id"],
                                          session_id=new.id)
    return CallAnswer(kind="stream", call_id=row["id"], session_id=new.id,
                      stream_parameters=stream_parameters(settings, new.id))


async def answer_outbound_call(pool: asyncpg.Pool, *, settings: Settings, number: PhoneNumber,
                               call_ref: str) -> CallAnswer:
    """The callee picked up a call we placed: stream it to the session made when it was placed
    (once: a replayed answer starts nothing)."""
    row = await calls_db.find_phone_call(pool, provider=number.provider, call_ref=call_ref)
    if row is None or row["org_id"] != number.org_id or row["direction"] != "outbound" \
            or row["session_id"] is None:
        return CallAnswer(kind="refused", failure={"error": "not_found",
                                                   "message": "no such outbound call"})
    if not await calls_db.answer_phone_calls_row(pool, org_id=number.org_id, call_id=row["id"]):
        return CallAnswer(kind="replay", call_id=row["id"], session_id=row["session_id"])
    return CallAnswer(kind="stream", call_id=row["id"], session_id=row["session_id"],
                      stream_parameters=stream_parameters(settings, row["session_id"]))


async def attach_stream(pool: asyncpg.Pool, *, settings: Settings, provider: str, call_ref: str,
                        parameters: dict[str, str]) -> asyncpg.Record:
    """The call whose media stream this is: the token must be its session's and unused, the
    session a live phone session, the carrier's call id the one recorded for it."""
    try:
        session_id = UUID(parameters.get("session", ""))
    except ValueError:
        raise Unauthorized("the stream names no session") from None
    token = parameters.get("token", "")
    if not verify_voice_token(settings, session_id, token):
        raise Unauthorized("invalid or expired stream token")
    session = await sessions_db.get_session_brief(pool, session_id=session_id)
    if session is None or session["channel"] != "phone":
        raise NotFound(f"phone session {session_id} not found")
    if session["status"] in ("ended", "failed"):
        raise Conflict(f"session {session_id} has {session['status']}")
    call = await calls_db.get_phone_call_of_session(pool, session_id=session_id)
    if call is None or call["provider"] != provider or call["call_ref"] != call_ref:
        raise Unauthorized("the stream's call is not this session's call")
    first_use = await leases_db.insert_voice_token_uses_row(
        pool, token_id=hashlib.sha256(token.encode()).hexdigest(), org_id=session["org_id"],
        session_id=session_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.telephony.stream_token_ttl_s))
    if not first_use:
        raise Unauthorized("this stream token has attached already")
    return call


async def record_call_status(pool: asyncpg.Pool, *, settings: Settings, provider: str,
                             call_ref: str, status: str,
                             detail: dict[str, Any] | None = None) -> asyncpg.Record | None:
    """A carrier's status for a call; a final one ends the call and, if no stream carries the
    session any more, its session (with the status as the reason)."""
    row = await calls_db.find_phone_call(pool, provider=provider, call_ref=call_ref)
    if row is None:
        return None
    status = status[:32]
    await calls_db.insert_phone_call_events_row(pool, org_id=row["org_id"], call_id=row["id"],
                                                kind="status",
                                                detail={"status": status, **(detail or {})})
    updated = await calls_db.update_phone_calls_row(pool, org_id=row["org_id"],
                                                    call_id=row["id"], status=status)
    if status in calls_db.FINAL_STATUSES and row["session_id"] is not None:
        await end_call_session(pool, settings=settings, session_id=row["session_id"],
                               reason=status)
    return updated


async def end_call_session(pool: asyncpg.Pool, *, settings: Settings, session_id: UUID,
                           reason: str) -> None:
    """End the session unless it has ended or a live stream still carries it (that stream's
    pipeline records the end itself when the carrier stops it)."""
    session = await sessions_db.get_session_brief(pool, session_id=session_id)
    if session is None or session["status"] in ("ended", "failed"):
        return
    if await calls_db.voice_lease_live_for_session(pool, session_id=session_id):
        return
    await run_step(pool, session_id, InboundEvent.session_ended(reason), settings=settings)


@dataclass(frozen=True)
class PlacedCall:
    call_id: UUID
    session_id: UUID
    call_ref: str
    to: str
    from_number: str


async def place_outbound_call(pool: asyncpg.Pool, *, settings: Settings, org_id: UUID,
                              flow_id: UUID, from_number: str, to: str,
                              variables: dict[str, Any] | None = None) -> PlacedCall:
    """Dial `to` from one of the organization's numbers into a new session of `flow_id`:
    the guard first (403, 429; a refused destination is recorded as a refused call), then the
    carrier's secrets and the session's providers (412), then the carrier (502 on its error)."""
    from_e164 = normalize_number(from_number, field_name="from_number")
    row = await numbers_db.get_phone_number_by_number(pool, org_id=org_id, number=from_e164)
    if row is None:
        raise NotFound(f"from_number: {from_e164} is not one of the organization's numbers")
    number = PhoneNumber.from_row(row)
    try:
        to_e164 = await guard_outbound_call(pool, org_id=org_id, to=to, settings=settings)
    except DestinationRefused as refused:
        refused_row = await calls_db.insert_phone_calls_row(
            pool, org_id=org_id, number_id=number.id, provider=number.provider,
            direction="outbound", call_ref=None, from_number=number.number,
            to_number=refused.to[:32], status="refused")
        if refused_row is not None:
            await calls_db.update_phone_calls_row(
                pool, org_id=org_id, call_id=refused_row["id"],
                failure={"error": refused.code, "reason": refused.reason,
                         "message": refused.message})
        raise
    carrier = carrier_for(number.provider, settings=settings)
    secrets = await number_secrets(pool, number, settings=settings)
    new = await create_session(
        pool, settings=settings, org_id=org_id, flow_id=flow_id, channel="phone",
        variables={**(variables or {}),
                   **call_variables(number, caller=number.number, called=to_e164)})
    call = await calls_db.insert_phone_calls_row(
        pool, org_id=org_id, number_id=number.id, provider=number.provider,
        direction="outbound", call_ref=None, from_number=number.number, to_number=to_e164,
        status="queued", session_id=new.id)
    assert call is not None  # no carrier id yet: nothing to conflict with
    try:
        call_ref = await carrier.place_call(number=number, to=to_e164, session_id=new.id,
                                            secrets=secrets)
    except AicoError as err:
        await calls_db.update_phone_calls_row(pool, org_id=org_id, call_id=call["id"],
                                              status="failed",
                                              failure={"error": err.code, "message": err.message})
        await run_step(pool, new.id, InboundEvent.session_ended("call_failed"), settings=settings)
        raise
    await calls_db.update_phone_calls_row(pool, org_id=org_id, call_id=call["id"],
                                          call_ref=call_ref, status="initiated")
    return PlacedCall(call_id=call["id"], session_id=new.id, call_ref=call_ref, to=to_e164,
                      from_number=number.number)


async def refused_transfer(pool: asyncpg.Pool, *, org_id: UUID, session_id: UUID,
                           to: str) -> str | None:
    """Why the toll-fraud guard will not let a transfer node move this call to `to` (recorded
    on the call), or None. Asked by the flow before it hands the call over, so that a refused
    transfer keeps the caller on the line."""
    try:
        check_destination(await load_dialing_policy(pool, org_id=org_id), to)
        return None
    except DestinationRefused as refused:
        call = await calls_db.get_phone_call_of_session(pool, session_id=session_id)
        if call is not None:
            await calls_db.insert_phone_call_events_row(
                pool, org_id=org_id, call_id=call["id"], kind="transfer_refused",
                detail={"to": refused.to, "reason": refused.reason, "message": refused.message})
        log.warning("session %s: transfer to %s refused (%s)", session_id, refused.to,
                    refused.reason)
        return refused.reason


async def transfer_call(pool: asyncpg.Pool, *, settings: Settings, session_id: UUID, to: str,
                        mode: str, summary: str | None = None) -> bool:
    """Move the session's live call to `to` if the organization may dial it; a refusal (or a
    carrier error) is recorded on the call and answered with False."""
    call = await calls_db.get_phone_call_of_session(pool, session_id=session_id)
    if call is None or call["call_ref"] is None or call["number_id"] is None:
        raise NotFound(f"session {session_id} has no live phone call")
    org_id = call["org_id"]
    try:
        to_e164 = check_destination(await load_dialing_policy(pool, org_id=org_id), to)
    except DestinationRefused as refused:
        await calls_db.insert_phone_call_events_row(
            pool, org_id=org_id, call_id=call["id"], kind="transfer_refused",
            detail={"to": refused.to, "reason": refused.reason, "message": refused.message})
        log.warning("call %s: transfer to %s refused (%s)", call["call_ref"], refused.to,
                    refused.reason)
        return False
    number_row = await numbers_db.get_phone_number(pool, org_id=org_id,
                                                   number_id=call["number_id"])
    if number_row is None:
        raise ValidationFailed("the call's number was removed: it cannot be transferred")
    number = PhoneNumber.from_row(number_row)
    try:
        secrets = await number_secrets(pool, number, settings=settings)
        await carrier_for(number.provider, settings=settings).transfer(
            number=number, call_ref=call["call_ref"], to=to_e164, warm=mode == "warm",
            summary=summary, secrets=secrets)
    except AicoError as err:
        await calls_db.insert_phone_call_events_row(
            pool, org_id=org_id, call_id=call["id"], kind="transfer_failed",
            detail={"to": to_e164, "error": err.code, "message": err.message})
        return False
    await calls_db.insert_phone_call_events_row(pool, org_id=org_id, call_id=call["id"],
                                                kind="transferred",
                                                detail={"to": to_e164, "mode": mode})
    return True
