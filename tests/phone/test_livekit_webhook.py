"""A SIP caller reaches a flow through LiveKit: LiveKit's signed webhook about the caller
joining a room starts a `phone` session and sends the agent into that room; anything unsigned
starts nothing. (The LiveKit server is a loopback stand-in that records every request; it
carries no media, so the agent's join is refused there and the call is recorded as failed.)"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import livekit_fixtures
from livekit_standin import LiveKitStandIn

# The fixtures this module's tests take.
livekit = livekit_fixtures.livekit
lk_org = livekit_fixtures.lk_org

ROOM_COUNT = "SELECT count(*) FROM sessions WHERE org_id = $1"


async def _calls(org: Any) -> list[dict[str, Any]]:
    r = await org.api.get(f"/v1/phone-numbers/{org.number['id']}/calls")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _until(predicate: Any, *, timeout_s: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := await predicate()):
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.05)
    return value


async def test_a_signed_sip_join_starts_a_phone_session_and_sends_the_agent_to_that_room(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool) -> None:
    org = await lk_org()
    event = org.caller_joins(room="call-inbound-1", caller="+12125550123")

    r = await org.deliver(event)

    assert r.status_code == 200, r.text
    session_id = r.json()["session_id"]
    session = (await org.api.get(f"/v1/sessions/{session_id}")).json()
    assert session["channel"] == "phone"
    assert session["flow_id"] == org.flow_id
    row = await pool.fetchrow("SELECT variables, user_id FROM sessions WHERE id = $1",
                              UUID(session_id))
    assert row is not None
    assert row["variables"]["caller"] == "+12125550123"
    assert row["variables"]["called"] == org.number["number"]
    assert row["user_id"] == "+12125550123"

    # The agent went to the caller's room, with a token for that room alone, as an agent.
    join = await asyncio.to_thread(livekit.wait_for, lambda: livekit.joins)
    assert [j.room for j in join] == ["call-inbound-1"]
    grants = join[0].claims.video
    assert join[0].identity == "aico-agent"
    assert grants.room_join and grants.agent and grants.can_publish and grants.can_subscribe
    assert not grants.room_admin and not grants.room_create

    # The call is recorded with its session; the stand-in refused the media connection, so
    # the call and the session end as failed, saying why.
    calls = await _until(lambda: _failed_calls(org))
    assert len(calls) == 1
    call = calls[0]
    assert call["direction"] == "inbound" and call["provider"] == "livekit"
    assert call["from_number"] == "+12125550123" and call["to_number"] == org.number["number"]
    assert call["session_id"] == session_id
    assert call["call_ref"] == "call-inbound-1/sip_+12125550123"
    assert call["failure"]["error"] == "room_join_failed"
    status = await pool.fetchval("SELECT status FROM sessions WHERE id = $1", UUID(session_id))
    assert status == "failed"

    # LiveKit redelivers the same webhook: nothing new starts.
    again = await org.deliver(event)
    assert again.status_code == 200 and "session_id" not in again.json()
    assert await pool.fetchval(ROOM_COUNT, org.id) == 1
    assert len(await _calls(org)) == 1
    assert len(livekit.joins) == 1


async def _failed_calls(org: Any) -> list[dict[str, Any]]:
    calls = await _calls(org)
    return calls if calls and all(c["status"] == "failed" for c in calls) else []


async def test_an_unsigned_or_forged_webhook_is_401_and_starts_nothing(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool) -> None:
    org = await lk_org()
    event = org.caller_joins(room="call-forged")

    forged = await org.deliver(event, secret="not-the-livekit-secret-" + "x" * 16)
    tampered = await org.deliver(event, tamper=True)
    unsigned = await org.livekit_side.post("/v1/channels/livekit/webhook",
                                           json={"event": "participant_joined"})
    not_a_jwt = await org.livekit_side.post("/v1/channels/livekit/webhook", content=b"{}",
                                            headers={"Authorization": "Bearer nonsense"})

    for r in (forged, tampered, unsigned, not_a_jwt):
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthorized"
    assert "Authorization" in forged.json()["message"]
    assert await pool.fetchval(ROOM_COUNT, org.id) == 0
    assert await _calls(org) == []
    assert livekit.joins == [] and livekit.requests == []


async def test_a_call_whose_flow_lacks_secrets_is_recorded_failed_with_no_session_or_agent(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool) -> None:
    org = await lk_org()
    put = await org.api.put("/v1/org/providers", json={"profiles": [{
        "name": "acme", "capability": "llm", "internal": True,
        "config": {"kind": "openai", "api_key_secret": "ACME_OPENAI_KEY"}}]})
    assert put.status_code == 200, put.text
    flow = {**_greeter_with_llm_profile("acme")}
    made = await org.api.post("/v1/flows", json={"name": flow["name"], "document": flow})
    flow_id = made.json()["id"]
    assert (await org.api.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    patched = await org.api.patch(f"/v1/phone-numbers/{org.number['id']}",
                                  json={"flow_id": flow_id})
    assert patched.status_code == 200, patched.text

    r = await org.deliver(org.caller_joins(room="call-no-secrets"))

    assert r.status_code == 200 and r.json()["refused"] is True
    calls = await _calls(org)
    assert len(calls) == 1 and calls[0]["status"] == "failed"
    assert calls[0]["session_id"] is None
    assert calls[0]["failure"]["error"] == "missing_secrets"
    assert "ACME_OPENAI_KEY" in calls[0]["failure"]["message"]
    assert await pool.fetchval(ROOM_COUNT, org.id) == 0
    # The room is closed (LiveKit hangs the caller up); no agent joined to run a flow. The
    # apology is spoken by a separate participant, which the stand-in cannot carry.
    await asyncio.to_thread(livekit.wait_for, lambda: livekit.calls("DeleteRoom"))
    assert livekit.calls("DeleteRoom")[0].body == {"room": "call-no-secrets"}
    assert [j.identity for j in livekit.joins] == ["aico-apology"]


def _greeter_with_llm_profile(profile: str) -> dict[str, Any]:
    return {
        "name": "lk-cloud",
        "providers": {"llm": {"profile": profile}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "greet", "type": "say", "text": "Hello."},
                  {"id": "hear", "type": "listen"}],
        "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "hear"}],
    }


async def test_a_join_by_someone_else_or_for_a_number_aico_does_not_have_starts_nothing(
        lk_org: Any, livekit: LiveKitStandIn, pool: asyncpg.Pool) -> None:
    org = await lk_org()
    browser = org.caller_joins(room="call-browser")
    browser["participant"]["kind"] = "STANDARD"
    unknown = org.caller_joins(room="call-elsewhere")
    unknown["participant"]["attributes"]["sip.trunkPhoneNumber"] = "+15550009999"

    for event in (browser, unknown):
        r = await org.deliver(event)
        assert r.status_code == 200 and "session_id" not in r.json()
    assert await pool.fetchval(ROOM_COUNT, org.id) == 0
    assert await _calls(org) == []
    assert livekit.joins == []
