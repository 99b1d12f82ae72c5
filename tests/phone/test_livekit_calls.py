"""Calls AICO places and moves through LiveKit SIP, asserted on what the LiveKit server was asked
(the loopback stand-in records every Twirp request): a number's trunks and dispatch rule are
provisioned, `POST /v1/calls` becomes CreateSIPParticipant on the number's outbound trunk into
the session's own room, the callee's arrival sends the agent there, a busy callee is recorded,
and a flow's transfer node becomes TransferSIPParticipant (SIP REFER) of the caller."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import livekit_fixtures
import pytest
from livekit_standin import LiveKitStandIn, sip_participant_joined
from phone_api import allow_dialing, put_secret

from aico.voice_messages import ServerModel, to_wire
from serve_apps.routes import livekit_webhook

livekit = livekit_fixtures.livekit
lk_org = livekit_fixtures.lk_org

TRUNK = {"sip_address": "sip.telnyx.example", "sip_username": "aico-trunk",
         "sip_password_secret": "TRUNK_PASSWORD"}
CALLEE = "+12125550123"


async def _provisioned(org: Any) -> dict[str, Any]:
    await put_secret(org.api, "TRUNK_PASSWORD", "trunk-password-1")
    r = await org.api.post(f"/v1/channels/livekit/numbers/{org.number['id']}/provision")
    assert r.status_code == 200, r.text
    return dict(r.json()["settings"])


async def test_a_number_gets_its_trunks_and_dispatch_rule_and_loses_them_on_removal(
        lk_org: Any, livekit: LiveKitStandIn) -> None:
    org = await lk_org(number_settings=TRUNK)

    settings = await _provisioned(org)

    number = org.number["number"]
    (inbound,) = livekit.calls("CreateSIPInboundTrunk")
    assert inbound.body["trunk"]["numbers"] == [number]
    assert inbound.claims.sip is not None and inbound.claims.sip.admin
    (rule,) = livekit.calls("CreateSIPDispatchRule")
    rule_info = rule.body["dispatchRule"]
    assert rule_info["trunkIds"] == [settings["inbound_trunk_id"]]
    assert rule_info["rule"]["dispatchRuleIndividual"]["roomPrefix"] == "call-"
    assert number in rule_info["roomConfig"]["metadata"]
    (outbound,) = livekit.calls("CreateSIPOutboundTrunk")
    assert outbound.body["trunk"]["address"] == "sip.telnyx.example"
    assert outbound.body["trunk"]["numbers"] == [number]
    assert outbound.body["trunk"]["authUsername"] == "aico-trunk"
    assert outbound.body["trunk"]["authPassword"] == "trunk-password-1"  # the secret's value
    assert settings["outbound_trunk_id"] in livekit.outbound_trunks
    assert settings["sip_password_secret"] == "TRUNK_PASSWORD"  # the name stays a name
    stored = (await org.api.get(f"/v1/phone-numbers/{org.number['id']}")).json()
    assert stored["settings"]["dispatch_rule_id"] == settings["dispatch_rule_id"]

    r = await org.api.delete(f"/v1/channels/livekit/numbers/{org.number['id']}/provision")

    assert r.status_code == 200, r.text
    assert sorted(r.json()["deleted"]) == sorted(
        settings[k] for k in ("inbound_trunk_id", "outbound_trunk_id", "dispatch_rule_id"))
    assert not livekit.inbound_trunks and not livekit.outbound_trunks
    assert not livekit.dispatch_rules


async def test_an_outbound_call_dials_through_the_numbers_trunk_and_the_agent_joins_on_answer(
        lk_org: Any, livekit: LiveKitStandIn) -> None:
    org = await lk_org(number_settings=TRUNK)
    settings = await _provisioned(org)
    await allow_dialing(org.api, country_codes=["1"])

    r = await org.api.post("/v1/calls", json={"flow_id": org.flow_id, "to": CALLEE,
                                               "from_number": org.number["number"]})

    assert r.status_code == 201, r.text
    placed = r.json()
    room = f"call-{placed['session_id']}"
    (dial,) = livekit.calls("CreateSIPParticipant")
    assert dial.body["sipTrunkId"] == settings["outbound_trunk_id"]
    assert dial.body["sipCallTo"] == CALLEE
    assert dial.body["sipNumber"] == org.number["number"]
    assert dial.body["roomName"] == room
    assert dial.body["participantIdentity"] == f"sip_{CALLEE}"
    assert dial.body["ringingTimeout"] == "30s"
    assert dial.claims.sip is not None and dial.claims.sip.call
    assert placed["call_ref"] == f"{room}/sip_{CALLEE}"
    assert livekit.joins == []  # nobody answered yet: the agent waits

    # The callee picks up: LiveKit reports them in the room, and the agent goes there.
    answered = sip_participant_joined(room_name=room, called=CALLEE,
                                      caller=org.number["number"])
    answered["participant"]["identity"] = f"sip_{CALLEE}"
    w = await org.deliver(answered)

    assert w.status_code == 200, w.text
    assert w.json()["session_id"] == placed["session_id"]
    joins = await asyncio.to_thread(livekit.wait_for, lambda: livekit.joins)
    assert [(j.room, j.identity) for j in joins] == [(room, "aico-agent")]
    again = await org.deliver(answered)  # redelivered: the agent does not go twice
    assert "session_id" not in again.json()
    calls = (await org.api.get("/v1/calls")).json()["items"]
    assert [(c["direction"], c["to_number"], c["session_id"]) for c in calls] == [
        ("outbound", CALLEE, placed["session_id"])]


async def test_a_busy_callee_is_recorded_and_the_request_says_so(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool) -> None:
    org = await lk_org(number_settings=TRUNK)
    await _provisioned(org)
    await allow_dialing(org.api, country_codes=["1"])
    livekit.fail_next_sip_call(486, "Busy Here")

    r = await org.api.post("/v1/calls", json={"flow_id": org.flow_id, "to": CALLEE,
                                               "from_number": org.number["number"]})

    assert r.status_code == 502, r.text
    assert "486" in r.json()["message"]
    (call,) = (await org.api.get("/v1/calls")).json()["items"]
    assert call["status"] == "failed" and call["failure"]["error"] == "busy"
    assert await pool.fetchval("SELECT status FROM sessions WHERE org_id = $1", org.id) == "ended"
    assert livekit.joins == []


class RoomMedia:
    """What a LiveKit room carries for the agent, standing in for the room's WebRTC media
    (no LiveKit server runs here): silence from the caller until they hang up; the agent's
    audio and events are kept."""

    sample_rate = 48000

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio_bytes = 0
        self.closed: str | None = None
        self._inbox: asyncio.Queue[bytes | dict[str, Any] | None] = asyncio.Queue()

    async def receive(self) -> bytes | dict[str, Any] | None:
        return await self._inbox.get()

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None:
        self.audio_bytes += len(pcm16)

    async def send_event(self, event: ServerModel) -> None:
        self.events.append(to_wire(event))

    async def close(self, reason: str, *, code: int = 1000) -> None:
        if self.closed is None:  # the first close is why the agent left
            self.closed = reason
        self._inbox.put_nowait(None)  # leaving the room ends this side of the call

    def hang_up(self) -> None:
        self._inbox.put_nowait(None)


TRANSFER_TO = "+12125550199"
TRANSFER_FLOW: dict[str, Any] = {
    "name": "lk-transfer",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "say", "type": "say", "text": "Connecting you now."},
              {"id": "move", "type": "transfer", "to": TRANSFER_TO},
              {"id": "hear", "type": "listen"}],
    "edges": [{"from": "start", "to": "say"}, {"from": "say", "to": "move"},
              {"from": "move", "to": "hear"}],
}


async def test_a_transfer_node_refers_the_caller_to_the_number(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rooms: list[tuple[str, RoomMedia]] = []

    async def join(url: str, token: str) -> RoomMedia:
        media = RoomMedia()
        rooms.append((token, media))
        return media

    monkeypatch.setattr(livekit_webhook, "join_room", join)
    org = await lk_org(flow=TRANSFER_FLOW)  # a cold transfer needs no outbound trunk
    await allow_dialing(org.api, country_codes=["1"])

    r = await org.deliver(org.caller_joins(room="call-transfer-1", caller=CALLEE))

    assert r.status_code == 200, r.text
    refer = await asyncio.to_thread(livekit.wait_for,
                                    lambda: livekit.calls("TransferSIPParticipant"),
                                    timeout_s=120)
    body = refer[0].body
    assert (body["roomName"], body["participantIdentity"], body["transferTo"]) == (
        "call-transfer-1", f"sip_{CALLEE}", f"tel:{TRANSFER_TO}")
    assert refer[0].claims.sip is not None and refer[0].claims.sip.call
    (_token, media) = rooms[0]
    try:
        assert any(e.get("type") == "transfer" for e in media.events)
        kinds = await _wait_events(pool, r.json()["call_id"])
        assert kinds == ["transferred"]
    finally:
        media.hang_up()


async def _wait_events(pool: asyncpg.Pool, call_id: str) -> list[str]:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        rows = await pool.fetch("SELECT kind FROM phone_call_events WHERE call_id = $1::uuid"
                                " ORDER BY id", call_id)
        if rows:
            return [r["kind"] for r in rows]
        assert asyncio.get_running_loop().time() < deadline, "no call event was recorded"
        await asyncio.sleep(0.05)


WARM_FLOW: dict[str, Any] = {**TRANSFER_FLOW, "name": "lk-warm",
             "nodes": [{**n, "mode": "warm"} if n["type"] == "transfer" else n
                       for n in TRANSFER_FLOW["nodes"]]}


async def test_a_warm_transfer_dials_the_person_in_then_the_agent_briefs_them_and_leaves(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rooms: list[RoomMedia] = []

    async def join(url: str, token: str) -> RoomMedia:
        rooms.append(RoomMedia())
        return rooms[-1]

    monkeypatch.setattr(livekit_webhook, "join_room", join)
    org = await lk_org(flow=WARM_FLOW, number_settings=TRUNK)
    settings = await _provisioned(org)
    await allow_dialing(org.api, country_codes=["1"])

    r = await org.deliver(org.caller_joins(room="call-warm-1", caller=CALLEE))

    assert r.status_code == 200, r.text
    dial = await asyncio.to_thread(livekit.wait_for,
                                   lambda: livekit.calls("CreateSIPParticipant"), timeout_s=120)
    body = dial[0].body
    assert (body["roomName"], body["sipCallTo"], body["sipTrunkId"]) == (
        "call-warm-1", TRANSFER_TO, settings["outbound_trunk_id"])
    assert body["participantIdentity"] == f"transfer_{TRANSFER_TO}"
    assert body["waitUntilAnswered"] is True
    assert CALLEE in body["participantAttributes"]["aico.summary"]
    assert livekit.calls("TransferSIPParticipant") == []  # the caller stays in the room
    media = rooms[0]
    deadline = asyncio.get_running_loop().time() + 60
    try:
        while media.closed is None:
            assert asyncio.get_running_loop().time() < deadline, "the agent never left the room"
            await asyncio.sleep(0.05)
    finally:
        media.hang_up()
    assert media.closed == "transferred"
    assert media.audio_bytes > 0  # the summary, at least, was spoken before leaving
    kinds = await _wait_events(pool, r.json()["call_id"])
    assert kinds == ["transferred"]


GOODBYE_FLOW = {
    "name": "lk-goodbye",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "bye", "type": "say", "text": "Goodbye."},
              {"id": "end", "type": "end"}],
    "edges": [{"from": "start", "to": "bye"}, {"from": "bye", "to": "end"}],
}


async def test_when_the_flow_ends_the_call_the_room_is_closed_which_hangs_the_caller_up(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rooms: list[RoomMedia] = []

    async def join(url: str, token: str) -> RoomMedia:
        rooms.append(RoomMedia())
        return rooms[-1]

    monkeypatch.setattr(livekit_webhook, "join_room", join)
    org = await lk_org(flow=GOODBYE_FLOW)

    r = await org.deliver(org.caller_joins(room="call-goodbye-1", caller=CALLEE))

    assert r.status_code == 200, r.text
    try:
        deleted = await asyncio.to_thread(livekit.wait_for,
                                          lambda: livekit.calls("DeleteRoom"), timeout_s=120)
    finally:
        for media in rooms:
            media.hang_up()
    assert [d.body for d in deleted] == [{"room": "call-goodbye-1"}]
    assert rooms[0].audio_bytes > 0  # "Goodbye." was spoken before the room closed
    status = await pool.fetchval("SELECT status FROM sessions WHERE id = $1::uuid",
                                 r.json()["session_id"])
    assert status == "ended"
