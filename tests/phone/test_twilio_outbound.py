"""Outbound calls and transfers through Twilio, held by the toll-fraud guard: `POST /v1/calls`
places the call with the real `twilio` client against the fake's REST API; when the callee
answers, the call streams into its session like an inbound one. A transfer to an allowed
number becomes `<Dial>` on the live call; one to a premium-rate number is refused and recorded,
and Twilio is never asked. Destinations outside the policy, missing secrets and the caps are
refused before anything is dialled."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx
from phone_flows import CANNOT_TRANSFER, CONNECTING, TRANSFER_OK, TRANSFER_PREMIUM

from aico.settings import LimitSettings

CALLEE = "+12125550123"


async def wait_for(predicate: Any, *, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def session_status(pool: Any, session_id: Any, status: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        row = await pool.fetchrow("SELECT status, state FROM sessions WHERE id = $1", session_id)
        if row["status"] == status:
            return row
        assert time.monotonic() < deadline, f"session is {row['status']}, not {status}"
        await asyncio.sleep(0.05)


async def test_an_outbound_call_is_answered_then_transferred_with_dial(twilio_org, voices,
                                                                       pool):
    org = await twilio_org()
    placed = await org.api.post("/v1/calls", json={
        "flow_id": org.flow_id, "to": "+1 (212) 555-0123", "from_number": org.number,
        "variables": {"order": "42"}})
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert (body["to"], body["from_number"], body["status"]) == (CALLEE, org.number, "initiated")
    created = org.rest.calls_placed(org.account_sid)
    assert [c["sid"] for c in created] == [body["call_ref"]]
    form = created[0]["form"]
    assert (form["To"], form["From"]) == (CALLEE, org.number)
    assert form["Url"] == org.server.url + "/v1/channels/twilio/voice"
    assert form["StatusCallback"] == org.server.url + "/v1/channels/twilio/status"
    assert all(r.auth_ok for r in org.rest.requests if org.account_sid in r.path)

    line = org.line(remote=CALLEE, call_sid=body["call_ref"])
    assert (await line.status("ringing")).status_code == 204
    answer = await line.ring(direction="outbound-api")
    assert answer.status_code == 200, answer.text
    await line.open_stream(answer.text)
    try:
        connected = time.monotonic()
        await line.wait_audio(after=connected)
        assert "bakery" in await voices.hear(line.agent_audio(after=connected), 8000)
        await line.press("9")
        await wait_for(lambda: line.twiml_updates, timeout=60, what="the transfer's TwiML")
        dial = ET.fromstring(line.twiml_updates[0]).find("Dial")
        assert dial is not None and dial.attrib["callerId"] == org.number
        assert [n.text for n in dial.findall("Number")] == [TRANSFER_OK]
        # Twilio moved the call: the stream stopped.
        await asyncio.wait_for(line.closed.wait(), 30)
    finally:
        await line.hang_up()
    await session_status(pool, body["session_id"], "ended")
    stored = (await org.api.get(f"/v1/sessions/{body['session_id']}/events")).json()["items"]
    assert [(e["type"], e["payload"]) for e in stored][-2:] == [
        ("transfer", {"to": TRANSFER_OK, "mode": "cold"}), ("end", {"reason": "transferred"})]
    detail = await org.api.get(f"/v1/calls/{body['id']}")
    assert detail.status_code == 200
    call = detail.json()
    assert (call["direction"], call["call_ref"], call["to_number"]) == (
        "outbound", body["call_ref"], CALLEE)
    assert [e["kind"] for e in call["events"]] == ["status", "transferred"]
    assert call["events"][1]["detail"] == {"to": TRANSFER_OK, "mode": "cold"}
    variables = (await org.api.get(f"/v1/sessions/{body['session_id']}")).json()["variables"]
    assert (variables["order"], variables["called"], variables["caller"]) == (
        "42", CALLEE, org.number)
    heard_connecting = [t["text"] for t in (await org.api.get(
        f"/v1/sessions/{body['session_id']}")).json()["transcript"] if t["role"] == "assistant"]
    assert CONNECTING in heard_connecting


async def test_a_transfer_to_a_premium_number_is_refused_and_recorded(twilio_org, pool):
    org = await twilio_org()
    line = org.line()
    answer = await line.ring()
    session_id = await pool.fetchval("SELECT session_id FROM phone_calls WHERE call_ref = $1",
                                     line.call_sid)
    await line.open_stream(answer.text)

    async def said() -> list[str]:
        events = (await org.api.get(f"/v1/sessions/{session_id}/events")).json()["items"]
        return [e["payload"].get("text", "") for e in events if e["type"] == "say"]

    try:
        connected = time.monotonic()
        await line.wait_audio(after=connected)
        await line.press("8")
        deadline = time.monotonic() + 60
        while CANNOT_TRANSFER not in await said():  # the flow goes on past the refused node
            assert time.monotonic() < deadline, "the caller was not told"
            await asyncio.sleep(0.1)
        assert not line.closed.is_set()  # still on the line
        await line.wait_audio(after=time.monotonic())
    finally:
        await line.hang_up()
    await session_status(pool, session_id, "ended")
    stored = (await org.api.get(f"/v1/sessions/{session_id}/events")).json()["items"]
    assert [e["payload"] for e in stored if e["type"] == "transfer.refused"] == [
        {"node_id": "transfer_premium", "to": TRANSFER_PREMIUM, "reason": "premium_rate"}]
    assert not [e for e in stored if e["type"] == "transfer"]
    assert stored[-1]["type"] == "end" and stored[-1]["payload"]["reason"] != "transferred"
    assert (await org.api.get(f"/v1/sessions/{session_id}")).json()["variables"][
        "transfer_error"] == "premium_rate"
    assert line.twiml_updates == []
    assert org.rest.updates(line.call_sid) == []  # Twilio was never asked to dial it
    call = await pool.fetchrow("SELECT id FROM phone_calls WHERE call_ref = $1", line.call_sid)
    events = (await org.api.get(f"/v1/calls/{call['id']}")).json()["events"]
    refused = [e for e in events if e["kind"] == "transfer_refused"]
    assert len(refused) == 1
    assert refused[0]["detail"]["to"] == TRANSFER_PREMIUM
    assert refused[0]["detail"]["reason"] == "premium_rate"


async def test_outbound_calls_the_guard_refuses_dial_nothing(twilio_org, pool):
    org = await twilio_org()
    before = len(org.rest.requests)

    async def call(to: str, **extra: Any) -> httpx.Response:
        return await org.api.post("/v1/calls", json={
            "flow_id": org.flow_id, "to": to, "from_number": org.number, **extra})

    premium = await call(TRANSFER_PREMIUM)
    assert premium.status_code == 403 and premium.json()["reason"] == "premium_rate"
    abroad = await call("+33612345678")
    assert abroad.status_code == 403 and abroad.json()["reason"] == "not_allowed"
    assert "allowed_country_codes" in abroad.json()["message"]
    unassigned = await call("+15551230000")
    assert unassigned.status_code == 403 and unassigned.json()["reason"] == "unassigned"
    not_ours = await org.api.post("/v1/calls", json={
        "flow_id": org.flow_id, "to": CALLEE, "from_number": "+15550000001"})
    assert not_ours.status_code == 404 and "from_number" in not_ours.json()["message"]
    assert len(org.rest.requests) == before
    refused = await pool.fetch("SELECT status, to_number, failure FROM phone_calls"
                               " WHERE org_id = $1 ORDER BY created_at", org.id)
    assert [(r["status"], r["failure"]["reason"]) for r in refused] == [
        ("refused", "premium_rate"), ("refused", "not_allowed"), ("refused", "unassigned")]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0

    # The number's auth token is not stored: 412 naming it, nothing dialled or started.
    tokenless = await twilio_org(store_token=False)
    missing = await tokenless.api.post("/v1/calls", json={
        "flow_id": tokenless.flow_id, "to": CALLEE, "from_number": tokenless.number})
    assert missing.status_code == 412 and missing.json()["missing"] == ["TWILIO_AUTH_TOKEN"]
    assert tokenless.rest.calls_placed(tokenless.account_sid) == []
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1",
                               tokenless.id) == 0


async def test_the_organizations_outbound_caps_hold(twilio_org, phone_server, app_pool):
    from serve_apps.api import create_app

    org = await twilio_org()
    capped = phone_server.settings.model_copy(update={"limits": LimitSettings(
        outbound_calls_per_org=1, outbound_calls_per_minute_per_org=2)})
    app = create_app(capped, pool=app_pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=dict(org.api.headers), timeout=60) as api:
        async def call() -> httpx.Response:
            return await api.post("/v1/calls", json={
                "flow_id": org.flow_id, "to": CALLEE, "from_number": org.number})

        first = await call()
        assert first.status_code == 201, first.text
        busy = await call()  # the first is still in progress
        assert busy.status_code == 429 and busy.json()["error"] == "too_many_calls"
        line = org.line(remote=CALLEE, call_sid=first.json()["call_ref"])
        assert (await line.status("no-answer")).status_code == 204
        second = await call()
        assert second.status_code == 201, second.text
        line = org.line(remote=CALLEE, call_sid=second.json()["call_ref"])
        assert (await line.status("busy")).status_code == 204
        third = await call()  # the minute's two calls are spent
        assert third.status_code == 429 and third.json()["limit"] == \
            "outbound_calls_per_minute_per_org"
        assert int(third.headers["Retry-After"]) >= 1
    await app.state.aico.close()
    assert len(org.rest.calls_placed(org.account_sid)) == 2
    # Never answered: the status callback ended each call and its session, with the status.
    for placed, status in ((first, "no-answer"), (second, "busy")):
        record = (await org.api.get(f"/v1/sessions/{placed.json()['session_id']}")).json()
        assert record["status"] == "ended"
        stored = (await org.api.get(
            f"/v1/sessions/{placed.json()['session_id']}/events")).json()["items"]
        assert [e["payload"] for e in stored if e["type"] == "end"] == [{"reason": status}]
        call = (await org.api.get(f"/v1/calls/{placed.json()['id']}")).json()
        assert call["status"] == status and call["ended_at"] is not None
