"""Phone calls through LiveKit SIP: the carrier (outbound calls, transfers) and what a verified
LiveKit webhook about a SIP participant means for AICO.

    carrier = carrier_for("livekit")            # registered by this module
    ref = await carrier.place_call(number=n, to="+12125550123", session_id=sid, secrets={})
    # -> CreateSIPParticipant on the number's outbound trunk, into the session's own room

    arrival = await sip_participant_arrived(pool, settings, event)   # participant_joined
    # -> an inbound call: its number's flow, a new `phone` session, the call recorded;
    #    an outbound call answered: its session; a replay: None

A call is named by `"{room}/{participant identity}"` (`call_ref`): LiveKit identifies a SIP
participant by its room and identity, both of which a webhook carries, so an inbound call's
redelivered webhook finds the call it already started, and a transfer knows whom to move.

LiveKit's server is the operator's (`settings.livekit`: URL, API key and secret), so its
requests are not aimed by an organization and do not pass the egress guard; the trunks of a
number (its carrier's SIP address) are provisioned by `flows.livekit_sip`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from aico.errors import AicoError, ValidationFailed
from aico.settings import LiveKitSettings, Settings
from db import phone_calls as calls_db
from db import phone_numbers as numbers_db
from flows.phone_calls import answer_inbound_call
from flows.telephony import CarrierError, PhoneNumber, register_carrier

log = logging.getLogger("aico.flows.livekit_calls")

PROVIDER = "livekit"
# LiveKit's participant kind for a SIP caller (ParticipantInfo.Kind.SIP).
SIP_KIND = 3
# SIP answers that mean the callee did not take the call, as a carrier status.
_SIP_OUTCOMES = {486: "busy", 600: "busy", 480: "no-answer", 408: "no-answer", 487: "no-answer",
                 603: "refused"}


class LiveKitNotConfigured(AicoError):
    """The server has no LiveKit (`AICO_LIVEKIT_URL`, `_API_KEY`, `_API_SECRET`): HTTP 503."""

    status, code = 503, "livekit_not_configured"


class CallNotAnswered(CarrierError):
    """The callee's side refused the SIP call (busy, no answer): `outcome` is its status."""

    def __init__(self, message: str, *, outcome: str, sip_status_code: int | None) -> None:
        super().__init__(message, outcome=outcome, sip_status_code=sip_status_code)
        self.code = outcome.replace("-", "_")  # what the call's failure records: busy, no_answer
        self.outcome = outcome
        self.sip_status_code = sip_status_code


@asynccontextmanager
async def livekit_api(settings: LiveKitSettings) -> AsyncIterator[Any]:
    """A `livekit.api.LiveKitAPI` for the configured server (closed on exit)."""
    from livekit import api

    if not (settings.url and settings.api_key and settings.api_secret):
        raise LiveKitNotConfigured("LiveKit SIP needs AICO_LIVEKIT_URL, AICO_LIVEKIT_API_KEY and"
                                   " AICO_LIVEKIT_API_SECRET")
    client = api.LiveKitAPI(settings.url, settings.api_key, settings.api_secret)
    try:
        yield client
    finally:
        await client.aclose()


def room_for_session(settings: LiveKitSettings, session_id: UUID | str) -> str:
    """The room of an outbound call: one per session."""
    return f"{settings.room_prefix}{session_id}"


def call_ref(room: str, identity: str) -> str:
    return f"{room}/{identity}"


def split_call_ref(ref: str) -> tuple[str, str]:
    room, sep, identity = ref.partition("/")
    if not sep or not room or not identity:
        raise ValidationFailed(f"call_ref: {ref!r} is not a LiveKit call (room/identity)")
    return room, identity


def _sip_failure(err: Exception, *, what: str) -> CarrierError:
    code = getattr(err, "sip_status_code", None)
    status = getattr(err, "sip_status", None) or getattr(err, "message", "") or str(err)
    if code in _SIP_OUTCOMES:
        return CallNotAnswered(f"{what}: the callee's side answered SIP {code} {status}",
                               outcome=_SIP_OUTCOMES[code], sip_status_code=code)
    return CarrierError(f"{what}: LiveKit answered {type(err).__name__}: {status}",
                        sip_status_code=code)


class LiveKitCarrier:
    """Outbound calls and transfers through the operator's LiveKit server."""

    provider = PROVIDER

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.livekit

    async def place_call(self, *, number: PhoneNumber, to: str, session_id: UUID,
                         secrets: dict[str, str]) -> str:
        """CreateSIPParticipant: LiveKit dials `to` through the number's outbound trunk into
        the session's room; the agent joins when LiveKit reports the callee in the room."""
        from google.protobuf.duration_pb2 import Duration
        from livekit import api

        trunk = str(number.settings.get("outbound_trunk_id") or "")
        if not trunk:
            raise ValidationFailed(f"settings.outbound_trunk_id: number {number.number} has no"
                                   " LiveKit outbound trunk (set settings.sip_address to have"
                                   " one provisioned)")
        room = room_for_session(self.settings, session_id)
        identity = f"sip_{to}"
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=trunk, sip_call_to=to, sip_number=number.number, room_name=room,
            participant_identity=identity, participant_name=to,
            participant_metadata=json.dumps({"session_id": str(session_id)}),
            ringing_timeout=Duration(seconds=self.settings.ringing_timeout_s))
        async with livekit_api(self.settings) as lk:
            try:
                await lk.sip.create_sip_participant(request)
            except api.TwirpError as err:
                raise _sip_failure(err, what=f"calling {to}") from None
        return call_ref(room, identity)

    async def transfer(self, *, number: PhoneNumber, call_ref: str, to: str, warm: bool,
                       summary: str | None, secrets: dict[str, str]) -> None:
        """Cold: SIP REFER of the caller to `to` (TransferSIPParticipant). Warm: the person at
        `to` is dialled into the caller's room (CreateSIPParticipant, waiting for the answer);
        the agent's summary to them and its leaving are the room call's part."""
        from livekit import api

        room, identity = split_call_ref(call_ref)
        async with livekit_api(self.settings) as lk:
            try:
                if not warm:
                    await lk.sip.transfer_sip_participant(api.TransferSIPParticipantRequest(
                        room_name=room, participant_identity=identity, transfer_to=f"tel:{to}",
                        play_dialtone=False))
                    return
                trunk = str(number.settings.get("outbound_trunk_id") or "")
                if not trunk:
                    raise ValidationFailed(f"settings.outbound_trunk_id: number {number.number}"
                                           " has no outbound trunk to dial a warm transfer")
                await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                    sip_trunk_id=trunk, sip_call_to=to, sip_number=number.number,
                    room_name=room, participant_identity=f"transfer_{to}", participant_name=to,
                    participant_attributes={"aico.transfer": "warm",
                                            "aico.summary": (summary or "")[:500]},
                    wait_until_answered=True))
            except api.TwirpError as err:
                raise _sip_failure(err, what=f"transferring to {to}") from None


register_carrier(PROVIDER, LiveKitCarrier)


# --- a SIP participant in a room (the webhook) ----------------------------------------------

@dataclass(frozen=True)
class SipArrival:
    """A SIP participant that AICO must answer in `room`: the session to run there."""

    org_id: UUID
    session_id: UUID
    call_id: UUID
    room: str
    direction: str


@dataclass(frozen=True)
class SipRefused:
    """An inbound call AICO could not take (e.g. the flow's providers lack secrets): the
    caller is told so and the call ends; `failure` is what was recorded on the call."""

    org_id: UUID
    call_id: UUID
    room: str
    failure: dict[str, Any]


def _attributes(event: Any) -> dict[str, str]:
    return dict(event.participant.attributes)


async def sip_participant_arrived(pool: asyncpg.Pool, settings: Settings,
                                  event: Any) -> SipArrival | SipRefused | None:
    """What a verified `participant_joined` webhook (a `livekit.protocol.webhook.WebhookEvent`)
    asks of AICO; None when nothing: not a SIP participant, a number AICO does not answer, a
    person dialled in by a warm transfer, or a redelivery of a call already started."""
    participant = event.participant
    if event.event != "participant_joined" or participant.kind != SIP_KIND:
        return None
    attrs = _attributes(event)
    if attrs.get("aico.transfer"):
        return None  # the person a warm transfer dialled in: the room's call carries on
    room, identity = event.room.name, participant.identity
    ref = call_ref(room, identity)
    known = await calls_db.find_phone_call(pool, provider=PROVIDER, call_ref=ref)
    if known is not None:
        return await _outbound_answered(pool, known, room)
    called = attrs.get("sip.trunkPhoneNumber") or ""
    caller = attrs.get("sip.phoneNumber") or ""
    row = await numbers_db.find_phone_number(pool, called) if called else None
    if row is None or row["provider"] != PROVIDER:
        log.warning("LiveKit SIP call to %r in room %s: no LiveKit number of AICO's", called,
                    room)
        return None
    number = PhoneNumber.from_row(dict(row))
    answer = await answer_inbound_call(pool, settings=settings, number=number, call_ref=ref,
                                       caller=caller)
    if answer.kind == "replay" or answer.call_id is None:
        return None  # the same participant's webhook, delivered twice
    if answer.kind == "refused" or answer.session_id is None:
        return SipRefused(org_id=number.org_id, call_id=answer.call_id, room=room,
                          failure=answer.failure or {})
    return SipArrival(org_id=number.org_id, session_id=answer.session_id,
                      call_id=answer.call_id, room=room, direction="inbound")


async def _outbound_answered(pool: asyncpg.Pool, call: Any, room: str) -> SipArrival | None:
    """The callee of an outbound call is in the room: its session's agent joins, once."""
    if call["direction"] != "outbound" or call["session_id"] is None:
        return None
    if not await calls_db.answer_phone_calls_row(pool, org_id=call["org_id"], call_id=call["id"]):
        return None
    return SipArrival(org_id=call["org_id"], session_id=call["session_id"], call_id=call["id"],
                      room=room, direction="outbound")


async def sip_participant_left(pool: asyncpg.Pool, event: Any) -> asyncpg.Record | None:
    """A SIP participant left its room (hung up): its call ends as completed."""
    if event.event != "participant_left" or event.participant.kind != SIP_KIND:
        return None
    ref = call_ref(event.room.name, event.participant.identity)
    call = await calls_db.find_phone_call(pool, provider=PROVIDER, call_ref=ref)
    if call is None or call["ended_at"] is not None:
        return None
    return await calls_db.update_phone_calls_row(pool, org_id=call["org_id"],
                                                 call_id=call["id"], status="completed")

