"""A caller phones a flow through Telnyx, end to end on loopback with real audio: a fake Telnyx
signs the TeXML webhook with Ed25519 as Telnyx does, AICO answers with a TeXML `<Start><Stream>`,
the fake opens that media stream in Telnyx's message format and speaks Piper's words as 8 kHz
PCMU in real time; the agent answers in PCMU and Whisper hears it. A webhook signed with another
key, unsigned, or replayed after Telnyx's five-minute window starts nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
import httpx
import pytest
from fake_twilio import PhoneLine
from nacl.signing import SigningKey
from phone_api import add_number, admin_client, allow_dialing, publish_flow
from phone_flows import GREETING, HOURS, phone_flow
from websockets.asyncio.client import connect

VOICE_PATH = "/v1/channels/telnyx/voice"


def telnyx_call_id() -> str:
    return "v3:" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


@dataclass
class TelnyxLine(PhoneLine):
    """One call as Telnyx's network sees it: Fake Twilio's phone line with Telnyx's webhook
    signature and media-streaming message names."""

    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    call_control_id: str = field(default_factory=lambda: "v3:" + secrets.token_hex(16))

    def texml_form(self) -> dict[str, str]:
        return {"AccountSid": self.account_sid, "CallSid": self.call_sid, "From": self.remote,
                "To": self.our_number, "Direction": "inbound", "CallStatus": "ringing",
                "CallSidLegacy": self.call_control_id}

    async def ring(self, *, direction: str = "inbound", signed_at: int | None = None,
                   key: SigningKey | None = None, signature: str | None = None
                   ) -> httpx.Response:
        body = urlencode(self.texml_form()).encode()
        timestamp = str(signed_at if signed_at is not None else int(time.time()))
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if signature != "":
            signed = (key or self.signing_key).sign(timestamp.encode() + b"|" + body)
            headers["telnyx-signature-ed25519"] = signature or base64.b64encode(
                signed.signature).decode()
            headers["telnyx-timestamp"] = timestamp
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(self.app_url + VOICE_PATH, content=body, headers=headers)

    async def open_stream(self, twiml: str) -> None:
        stream = ET.fromstring(twiml).find("./Start/Stream")
        assert stream is not None, f"no <Start><Stream> in {twiml}"
        assert stream.attrib["bidirectionalMode"] == "rtp"
        assert stream.attrib["bidirectionalCodec"] == "PCMU"
        self.ws = await connect(stream.attrib["url"], max_size=None, ping_interval=None)
        await self._send({"event": "connected", "version": "1.0.0"})
        await self._send({"event": "start", "stream_id": self.stream_sid, "start": {
            "call_control_id": self.call_control_id, "client_state": "",
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}})
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._mic())]

    async def _send(self, message: dict[str, Any]) -> None:
        # Twilio's names in the shared line, Telnyx's on the wire.
        if "streamSid" in message:
            message["stream_id"] = message.pop("streamSid")
        assert self.ws is not None
        self._seq += 1
        await self.ws.send(json.dumps({**message,
                                       "sequence_number": str(self._seq)}))


@dataclass
class TelnyxOrg:
    id: UUID
    api: httpx.AsyncClient
    number: str
    number_id: str
    signing_key: SigningKey
    app_url: str

    def line(self, remote: str = "+12125550123") -> TelnyxLine:
        return TelnyxLine(app_url=self.app_url, account_sid=secrets.token_hex(16),
                          auth_token="", our_number=self.number, remote=remote,
                          call_sid=telnyx_call_id(), signing_key=self.signing_key)


@pytest.fixture
async def telnyx_org(phone_server: Any, pool: asyncpg.Pool
                     ) -> AsyncIterator[Callable[..., Awaitable[TelnyxOrg]]]:
    """An organization with the phone flow published and a Telnyx number whose settings hold
    the public half of the key the fake Telnyx signs with."""
    opened: list[httpx.AsyncClient] = []

    async def make() -> TelnyxOrg:
        org_id, api = await admin_client(pool, prefix="tx", base_url=phone_server.url)
        opened.append(api)
        flow_id = await publish_flow(api, phone_flow())
        key = SigningKey.generate()
        number = f"+1555{secrets.randbelow(10**7):07d}"
        made = await add_number(api, number=number, flow_id=flow_id, provider="telnyx",
                                settings={"public_key": base64.b64encode(
                                    bytes(key.verify_key)).decode()})
        await allow_dialing(api, country_codes=["1"])
        return TelnyxOrg(id=org_id, api=api, number=number, number_id=made["id"],
                         signing_key=key, app_url=phone_server.url)

    yield make
    for client in opened:
        with contextlib.suppress(Exception):
            await client.aclose()


async def _calls(org: TelnyxOrg) -> list[dict[str, Any]]:
    r = await org.api.get(f"/v1/phone-numbers/{org.number_id}/calls")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _session_status(org: TelnyxOrg, session_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        record = (await org.api.get(f"/v1/sessions/{session_id}")).json()
        if record["status"] == status:
            return dict(record)
        assert time.monotonic() < deadline, f"session is {record['status']}, not {status}"
        await asyncio.sleep(0.05)


async def test_a_caller_phones_a_telnyx_number_and_hears_the_agent_answer(
        telnyx_org: Any, voices: Any) -> None:
    org = await telnyx_org()
    line = org.line()

    answer = await line.ring()

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    await line.open_stream(answer.text)
    try:
        connected = time.monotonic()
        await line.wait_audio(after=connected)
        greeting = await voices.hear(line.agent_audio(after=connected), 8000)
        assert "bakery" in greeting, (greeting, GREETING)

        spoke = await line.say(await voices.caller("What are your hours?"))
        await line.wait_audio(after=spoke)
        hours = await voices.hear(line.agent_audio(after=spoke), 8000)
        assert "open" in hours and any(w in hours for w in ("nine", "9")), (hours, HOURS)
        # Every agent message was Telnyx's: 20 ms of PCMU each.
        assert {len(m) for _, m in line.media} == {160}
    finally:
        await line.hang_up()

    calls = await _calls(org)
    assert len(calls) == 1
    call = calls[0]
    assert call["provider"] == "telnyx" and call["direction"] == "inbound"
    assert call["call_ref"] == line.call_sid and call["from_number"] == "+12125550123"
    session = await _session_status(org, call["session_id"], "ended")
    assert session["channel"] == "phone" and session["variables"]["caller"] == line.remote
    turns = [(t["role"], t["text"]) for t in session["transcript"]]
    assert turns[:3] == [("assistant", GREETING), ("user", turns[1][1]), ("assistant", HOURS)]
    assert "hour" in turns[1][1].lower()


async def test_only_a_fresh_webhook_signed_with_the_numbers_key_starts_a_call(
        telnyx_org: Any, pool: asyncpg.Pool) -> None:
    org = await telnyx_org()
    line = org.line()

    other_key = await line.ring(key=SigningKey.generate())
    unsigned = await line.ring(signature="")
    garbage = await line.ring(signature="bm90IGEgc2lnbmF0dXJl")
    # Signed correctly, but six minutes ago: outside Telnyx's five-minute window.
    stale = await line.ring(signed_at=int(time.time()) - 360)

    for r in (other_key, unsigned, garbage, stale):
        assert r.status_code == 403, r.text
    assert "outside the 300 s tolerance" in stale.json()["message"]
    assert await _calls(org) == []
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0

    first = await line.ring()
    again = await line.ring()  # Telnyx redelivers within the window: nothing new starts

    assert first.status_code == 200 and "<Stream" in first.text
    assert again.status_code == 200 and "<Stream" not in again.text
    assert len(await _calls(org)) == 1
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1


async def test_a_call_whose_flow_cannot_start_hears_an_apology_and_is_recorded_failed(
        telnyx_org: Any, pool: asyncpg.Pool) -> None:
    org = await telnyx_org()
    put = await org.api.put("/v1/org/providers", json={"profiles": [{
        "name": "acme", "capability": "llm", "internal": True,
        "config": {"kind": "openai", "api_key_secret": "ACME_OPENAI_KEY"}}]})
    assert put.status_code == 200, put.text
    flow_id = await publish_flow(org.api, {**phone_flow(), "name": "tx-cloud",
                                           "providers": {"llm": {"profile": "acme"}}})
    patched = await org.api.patch(f"/v1/phone-numbers/{org.number_id}", json={"flow_id": flow_id})
    assert patched.status_code == 200, patched.text

    r = await org.line().ring()

    assert r.status_code == 200, r.text
    root = ET.fromstring(r.text)
    assert root.find("./Say") is not None and root.find("./Hangup") is not None
    assert root.find("./Start/Stream") is None
    (call,) = await _calls(org)
    assert call["status"] == "failed" and call["session_id"] is None
    assert call["failure"]["error"] == "missing_secrets"
    assert "ACME_OPENAI_KEY" in call["failure"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0
