"""LiveKit's webhook: `POST /v1/channels/livekit/webhook`, how a SIP call reaches a flow.

LiveKit signs each webhook with the server's API secret: a JWT in `Authorization` whose
`sha256` claim is the body's hash. `livekit-api`'s `WebhookReceiver` checks both over the raw
bytes BEFORE anything is parsed; a bad or missing signature is 401 and nothing is started.

* `participant_joined` of a SIP caller on an AICO number → the number's flow, a `phone`
  session (`flows.sessions.create_session`: providers resolved, secrets checked), the call
  recorded → the agent joins that room with an agent token for it alone and the call runs on
  the same pipeline as every voice call (`actors.transports.run_call`), on a pre-warmed voice
  actor when the API runs on Ray.
* The flow's providers lack secrets (or the flow cannot start): the call is recorded as failed
  with why, no session and no actor; a short apology is spoken into the room by the local TTS
  when the room can be joined, and the room is closed, which hangs the caller up.
* `participant_joined` of the callee of an outbound call (`POST /v1/calls`): its session's
  agent joins, once. `participant_left` of a SIP caller: the call is completed.
* A `transfer` from the flow goes through the toll-fraud guard, then the carrier
  (`flows.livekit_calls`: TransferSIPParticipant, or a warm transfer's dial-in); a refused one
  is recorded on the call.
* `POST /v1/channels/livekit/numbers/{id}/provision` (admin): the number's inbound trunk,
  dispatch rule and (with `settings.sip_address`) outbound trunk on the LiveKit server
  (`flows.livekit_sip`); `DELETE` removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Request

from actors.transports import HOST_FAILED, CallTransport, run_call
from actors.transports.livekit import LiveKitTransport, agent_token
from aico.errors import NotFound, Unauthorized, ValidationFailed
from aico.settings import LiveKitSettings
from db import phone_calls as calls_db
from db import phone_numbers as numbers_db
from db import session_failures
from db import sessions as sessions_db
from db import voice_leases as leases_db
from flows.livekit_calls import (
    LiveKitNotConfigured,
    SipArrival,
    SipRefused,
    livekit_api,
    sip_participant_arrived,
    sip_participant_left,
)
from flows.livekit_sip import PROVISIONED_KEYS, deprovision_number, provision_number
from flows.phone_calls import APOLOGY, transfer_call
from flows.telephony import PhoneNumber, number_secrets
from serve_apps.call_lease import keep_lease, new_holder
from serve_apps.deps import AdminDep, PoolDep, StateDep
from serve_apps.state import ApiState

log = logging.getLogger("aico.routes.livekit_webhook")
router = APIRouter(prefix="/v1/channels/livekit", tags=["phone"])

AGENT_IDENTITY = "aico-agent"
# Room calls in flight on this replica (kept so the loop does not drop their tasks).
_CALLS: set[asyncio.Task[Any]] = set()


async def join_room(url: str, token: str) -> CallTransport:
    """Join a LiveKit room as the agent (a seam: a test without a LiveKit server replaces it)."""
    return await LiveKitTransport.join(url=url, token=token)


def verify_webhook(settings: LiveKitSettings, raw: bytes, authorization: str | None) -> Any:
    """The verified `WebhookEvent`, or Unauthorized (401): nothing is parsed before this."""
    from livekit import api

    if not (settings.api_key and settings.api_secret):
        raise LiveKitNotConfigured("LiveKit webhooks need AICO_LIVEKIT_API_KEY and"
                                   " AICO_LIVEKIT_API_SECRET")
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not token:
        raise Unauthorized("Authorization: LiveKit's signed webhook token is required")
    receiver = api.WebhookReceiver(api.TokenVerifier(settings.api_key, settings.api_secret))
    try:
        return receiver.receive(raw.decode("utf-8"), token)
    except Exception:  # noqa: BLE001 - a bad JWT, a hash mismatch, bytes that are not UTF-8
        raise Unauthorized("Authorization: the webhook's signature or body hash does not"
                           " verify with the LiveKit API secret") from None


@router.post("/webhook")
async def livekit_webhook(request: Request, pool: PoolDep, state: StateDep) -> dict[str, Any]:
    event = verify_webhook(state.settings.livekit, await request.body(),
                           request.headers.get("authorization"))
    if event.event == "participant_left":
        ended = await sip_participant_left(pool, event)
        return {"event": event.event, "call_id": str(ended["id"]) if ended else None}
    outcome = await sip_participant_arrived(pool, state.settings, event)
    if isinstance(outcome, SipArrival):
        _spawn(_room_call(state, pool, outcome))
        return {"event": event.event, "call_id": str(outcome.call_id),
                "session_id": str(outcome.session_id)}
    if isinstance(outcome, SipRefused):
        _spawn(_apologise_and_close(state, outcome))
        return {"event": event.event, "call_id": str(outcome.call_id), "refused": True}
    return {"event": event.event}


@router.post("/numbers/{number_id}/provision")
async def provision(number_id: UUID, principal: AdminDep, pool: PoolDep,
                    state: StateDep) -> dict[str, Any]:
    """(Re)create the number's inbound trunk, dispatch rule and outbound trunk on the LiveKit
    server; their ids are kept in the number's settings."""
    number = await _livekit_number(pool, principal.org_id, number_id)
    secrets = await number_secrets(pool, number, settings=state.settings)
    lk = state.settings.livekit
    if any(number.settings.get(k) for k in PROVISIONED_KEYS):
        await deprovision_number(lk, number.settings)
    ids = await provision_number(lk, number, secrets=secrets)
    kept = {k: v for k, v in number.settings.items() if k not in PROVISIONED_KEYS}
    row = await numbers_db.update_phone_number(pool, org_id=principal.org_id,
                                               number_id=number_id,
                                               changes={"settings": {**kept, **ids}})
    if row is None:
        raise NotFound(f"phone number {number_id} not found")
    return {"id": row["id"], "number": row["number"], "settings": row["settings"]}


@router.delete("/numbers/{number_id}/provision")
async def deprovision(number_id: UUID, principal: AdminDep, pool: PoolDep,
                      state: StateDep) -> dict[str, Any]:
    """Delete the number's trunks and dispatch rule from the LiveKit server (before the number
    is removed, or to stop LiveKit routing it)."""
    number = await _livekit_number(pool, principal.org_id, number_id)
    deleted = await deprovision_number(state.settings.livekit, number.settings)
    kept = {k: v for k, v in number.settings.items() if k not in PROVISIONED_KEYS}
    await numbers_db.update_phone_number(pool, org_id=principal.org_id, number_id=number_id,
                                         changes={"settings": kept})
    return {"deleted": deleted}


async def _livekit_number(pool: asyncpg.Pool, org_id: UUID, number_id: UUID) -> PhoneNumber:
    row = await numbers_db.get_phone_number(pool, org_id=org_id, number_id=number_id)
    if row is None:
        raise NotFound(f"phone number {number_id} not found")
    if row["provider"] != "livekit":
        raise ValidationFailed(f"provider: number {row['number']} is on {row['provider']},"
                               " not LiveKit")
    return PhoneNumber.from_row(dict(row))


def _spawn(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _CALLS.add(task)
    task.add_done_callback(_CALLS.discard)


async def _room_call(state: ApiState, pool: asyncpg.Pool, arrival: SipArrival) -> None:
    """The agent joins the call's room and carries the call to its end, holding the session's
    voice lease like every call (the organization's cap on concurrent calls, the sweeper)."""
    limits = state.settings.limits
    holder = f"livekit:{new_holder()}"
    outcome = await leases_db.acquire_voice_leases_row(
        pool, org_id=arrival.org_id, session_id=arrival.session_id, holder=holder,
        ttl_s=limits.voice_lease_ttl_s, max_per_org=limits.voice_calls_per_org)
    if outcome in ("busy", "org_cap"):
        await _fail(pool, arrival, f"livekit: the call was refused ({outcome}: the organization"
                    f" has {limits.voice_calls_per_org} live calls)", "too_many_calls")
        return
    try:
        await _carry_room_call(state, pool, arrival, holder)
    finally:
        with contextlib.suppress(Exception):
            await leases_db.release_voice_leases_row(pool, session_id=arrival.session_id,
                                                     holder=holder)


async def _carry_room_call(state: ApiState, pool: asyncpg.Pool, arrival: SipArrival,
                           holder: str) -> None:
    from serve_apps.routes.voice import voice_host

    lk = state.settings.livekit
    assert lk.url and lk.api_key and lk.api_secret  # the webhook verified with them
    token = agent_token(api_key=lk.api_key, api_secret=lk.api_secret, room=arrival.room,
                        identity=AGENT_IDENTITY)
    try:
        transport = await join_room(lk.url, token)
    except Exception as err:  # noqa: BLE001 - whatever the SDK raises, the call cannot go on
        reason = f"livekit: the agent could not join room {arrival.room}: {err}"[:400]
        log.warning("%s", reason)
        await _fail(pool, arrival, reason, "room_join_failed")
        return
    transfers: list[asyncio.Task[Any]] = []

    async def observe(event: dict[str, Any]) -> None:
        if event.get("type") == "transfer":
            transfers.append(asyncio.create_task(_transfer(
                state, pool, arrival, transport, to=str(event.get("to") or ""),
                warm=event.get("mode") == "warm")))

    async def lease_lost() -> None:
        await transport.close("lease_lost", code=1011)

    renewing = asyncio.create_task(keep_lease(pool, arrival.session_id, holder,
                                              state.settings.limits.voice_lease_ttl_s,
                                              on_lost=lease_lost))
    try:
        host = await voice_host(state)
        reason = await run_call(transport, host, arrival.session_id, observe=observe)
    except Exception as err:
        log.exception("LiveKit call %s failed", arrival.session_id)
        reason = f"{HOST_FAILED}: {type(err).__name__}"
        with contextlib.suppress(Exception):
            await transport.close("error", code=1011)
    finally:
        renewing.cancel()
    for task in transfers:
        with contextlib.suppress(Exception):
            await task
    if reason.startswith(HOST_FAILED):
        await _fail(pool, arrival, reason, "call_failed")
        return
    if reason != "hangup":
        # The flow ended the call (not the caller): hang the caller up by closing the room.
        await _delete_room(state.settings.livekit, arrival.room)
    with contextlib.suppress(Exception):
        await calls_db.update_phone_calls_row(pool, org_id=arrival.org_id,
                                              call_id=arrival.call_id, status="completed")


async def _delete_room(lk: LiveKitSettings, room: str) -> None:
    """Close a room: LiveKit hangs up the SIP participants still in it."""
    from livekit import api

    try:
        async with livekit_api(lk) as client:
            await client.room.delete_room(api.DeleteRoomRequest(room=room))
    except Exception:  # LiveKit ends an empty room itself, later
        log.warning("LiveKit room %s could not be closed", room, exc_info=True)


async def _transfer(state: ApiState, pool: asyncpg.Pool, arrival: SipArrival,
                    transport: CallTransport, *, to: str, warm: bool) -> None:
    """The flow's transfer: through the guard to the carrier. A warm one dials the person into
    the room; once they answer, the agent tells them who is calling and why, and leaves."""
    summary = await _summary(pool, arrival) if warm else None
    moved = await transfer_call(pool, settings=state.settings, session_id=arrival.session_id,
                                to=to, mode="warm" if warm else "cold", summary=summary)
    if not (moved and warm and summary):
        return
    try:
        await _speak(transport, summary)
    finally:
        await transport.close("transferred")  # the agent leaves; caller and person stay


async def _summary(pool: asyncpg.Pool, arrival: SipArrival) -> str:
    """What the agent tells the person a warm transfer dialled in: who calls, and their last
    words to the agent."""
    row = await sessions_db.get_session(pool, org_id=arrival.org_id, session_id=arrival.session_id)
    caller = str(((row["variables"] if row else None) or {}).get("caller") or "a caller")
    turns = await sessions_db.list_transcript_turns(pool, org_id=arrival.org_id,
                                                    session_id=arrival.session_id)
    said = [t["text"] for t in turns if t["role"] == "user" and t["text"]]
    text = f"Hello, I am transferring a call from {caller} to you."
    if said:
        text += f" They said: {said[-1][:300]}"
    return text


async def _fail(pool: asyncpg.Pool, arrival: SipArrival, reason: str, error: str) -> None:
    try:
        await session_failures.fail_sessions_row(pool, session_id=arrival.session_id,
                                                 reason=reason)
        await calls_db.update_phone_calls_row(
            pool, org_id=arrival.org_id, call_id=arrival.call_id, status="failed",
            failure={"error": error, "message": reason})
    except Exception:  # the sweeper closes a session left open; the log says why
        log.exception("LiveKit call %s: could not record its failure", arrival.session_id)


async def _apologise_and_close(state: ApiState, refused: SipRefused) -> None:
    """Tell the caller the number cannot take the call (local TTS, best effort), then close
    the room: LiveKit hangs the SIP caller up when its room is deleted."""

    lk = state.settings.livekit
    assert lk.url and lk.api_key and lk.api_secret
    token = agent_token(api_key=lk.api_key, api_secret=lk.api_secret, room=refused.room,
                        identity="aico-apology")
    try:
        transport = await join_room(lk.url, token)
    except Exception as err:  # noqa: BLE001 - no room to speak into: the call still ends
        log.warning("LiveKit room %s: the apology could not be spoken: %s", refused.room, err)
    else:
        try:
            await _speak(transport, APOLOGY)
        except Exception:  # the apology is a courtesy; the hang-up must follow
            log.warning("LiveKit room %s: the apology failed", refused.room, exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                await transport.close("refused")
    await _delete_room(lk, refused.room)


async def _speak(transport: CallTransport, text: str) -> None:
    """`text` in the packaged offline voice, into the room."""
    from flows.sessions import default_configs
    from providers import runtime

    tts = await runtime.open_tts(default_configs()["tts"], secrets={})
    async for frame in tts.synthesize(text):
        await transport.send_audio(frame.pcm16, frame.sample_rate)

