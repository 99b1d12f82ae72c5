"""Twilio's Voice webhook is authenticated before anything happens: a bad, missing or foreign
signature is refused (403) and starts nothing; a redelivered CallSid starts no second session;
a stream token attaches once; a flow that cannot run is recorded and the caller hears an
apology. Twilio's side is the fake in fake_twilio.py, signing with the `twilio` library."""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET

from fake_twilio import sign, stream_of
from phone_flows import phone_flow
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def refused_stream(url: str, messages: list[dict]) -> tuple[list, int | None]:
    """What a media stream got before the server closed it, and the close code."""
    got = []
    async with asyncio.timeout(60), connect(url) as ws:
        for message in messages:
            await ws.send(json.dumps(message))
        try:
            async for message in ws:
                got.append(message)
        except ConnectionClosed:
            pass
        return got, ws.close_code


async def phone_sessions(pool, org_id) -> int:
    return int(await pool.fetchval(
        "SELECT count(*) FROM sessions WHERE org_id = $1 AND channel = 'phone'", org_id))


async def calls_of(pool, org_id) -> list:
    return await pool.fetch("SELECT * FROM phone_calls WHERE org_id = $1 ORDER BY created_at",
                            org_id)


async def test_a_webhook_that_twilio_did_not_sign_starts_nothing(twilio_org, pool):
    org = await twilio_org()
    other = await twilio_org()
    line = org.line()
    form = line.form()
    voice = "/v1/channels/twilio/voice"
    refusals = {
        "wrong token": await line.post(voice, form, token="0" * 32),
        "no signature": await line.post(voice, form, signature=""),
        # Another organization's real token cannot speak for this number.
        "another account's token": await line.post(voice, form, token=other.auth_token),
        # Signed for another URL (a request replayed at a different endpoint).
        "other url": await line.post(voice, form, signature=sign(
            org.auth_token, org.server.url + "/v1/channels/twilio/status", form)),
        # Signed over other parameters than those sent.
        "tampered": await line.post(voice, {**form, "From": "+12125550999"},
                                    signature=sign(org.auth_token, org.server.url + voice,
                                                   form)),
        # A correct signature from an account the number does not name.
        "foreign account": await line.post(voice, {**form, "AccountSid": other.account_sid}),
    }
    for why, response in refusals.items():
        assert response.status_code == 403, (why, response.text)
        assert response.json()["error"] == "forbidden", why
    status = await line.post("/v1/channels/twilio/status", line.form(status="completed"),
                             token="1" * 32)
    assert status.status_code == 403
    assert await phone_sessions(pool, org.id) == 0
    assert await calls_of(pool, org.id) == []


async def test_a_replayed_webhook_starts_no_second_session_and_a_stream_token_attaches_once(
        twilio_org, pool):
    org = await twilio_org()
    line = org.line()
    first = await line.ring()
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("application/xml")
    url, params = stream_of(first.text)
    assert url == org.server.url.replace("http://", "ws://") + "/v1/channels/twilio/media"
    assert set(params) == {"session", "token"}
    # Twilio redelivers the same webhook (same CallSid, same signature): nothing new starts.
    again = await line.ring()
    assert again.status_code == 200
    assert ET.fromstring(again.text).tag == "Response" and len(ET.fromstring(again.text)) == 0
    assert await phone_sessions(pool, org.id) == 1
    calls = await calls_of(pool, org.id)
    assert len(calls) == 1 and calls[0]["call_ref"] == line.call_sid
    assert str(calls[0]["session_id"]) == params["session"]
    assert (calls[0]["direction"], calls[0]["from_number"], calls[0]["to_number"]) == (
        "inbound", line.remote, org.number)

    await line.open_stream(first.text)
    try:
        await line.wait_speaking(after=time.monotonic() - 60)  # attached: the greeting plays
        # A second stream with the same token (a replayed stream) is refused unheard.
        start = {"event": "start", "streamSid": "MZ" + "1" * 32, "start": {
            "accountSid": org.account_sid, "streamSid": "MZ" + "1" * 32,
            "callSid": line.call_sid, "customParameters": params,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
        assert await refused_stream(url, [{"event": "connected"}, start]) == ([], 4401)
        # A forged token for the same session is refused too.
        forged = {**start, "start": {**start["start"], "customParameters": {
            "session": params["session"], "token": "9999999999.k." + "0" * 64}}}
        assert await refused_stream(url, [forged]) == ([], 4401)
    finally:
        await line.hang_up()
    completed = await line.status("completed")
    assert completed.status_code == 204
    call = (await calls_of(pool, org.id))[0]
    assert call["status"] == "completed" and call["ended_at"] is not None
    # The stream's end (Twilio's `stop`) is recorded by its pipeline as the socket closes.
    deadline = time.monotonic() + 30
    while (status := await pool.fetchval("SELECT status FROM sessions WHERE id = $1",
                                         call["session_id"])) != "ended":
        assert time.monotonic() < deadline, f"the session is {status}, not ended"
        await asyncio.sleep(0.05)
    ended = await pool.fetchval(
        "SELECT payload FROM session_events WHERE session_id = $1 AND type = 'session.ended'",
        call["session_id"])
    assert ended == {"reason": "hangup"}


async def test_a_flow_that_cannot_run_is_recorded_and_the_caller_hears_an_apology(
        twilio_org, pool):
    flow = {**phone_flow(), "providers": {"stt": {"profile": "cloud-stt"}}}
    org = await twilio_org(flow=flow)
    # The profile names a secret the organization never stored.
    put = await org.api.put("/v1/org/providers", json={"profiles": [
        {"name": "cloud-stt", "capability": "stt", "internal": True,
         "config": {"kind": "deepgram", "base_url": "http://127.0.0.1:9",
                    "api_key_secret": "DEEPGRAM_API_KEY"}}]})
    assert put.status_code == 200, put.text
    line = org.line()
    answer = await line.ring()
    assert answer.status_code == 200
    twiml = ET.fromstring(answer.text)
    assert [child.tag for child in twiml] == ["Say", "Hangup"]
    assert "cannot take your call" in (twiml[0].text or "")
    assert await phone_sessions(pool, org.id) == 0
    call = (await calls_of(pool, org.id))[0]
    assert call["status"] == "failed" and call["failure"]["error"] == "missing_secrets"
    assert "DEEPGRAM_API_KEY" in call["failure"]["message"]
    listed = (await org.api.get(f"/v1/phone-numbers/{org.number_id}/calls")).json()["items"]
    assert [c["failure"]["error"] for c in listed] == ["missing_secrets"]
