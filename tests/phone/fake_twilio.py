"""A fake Twilio on loopback, speaking Twilio's documented wire formats, for the phone tests.

* `TwilioRest` — the REST API the real `twilio` client talks to (base URL configurable in AICO):
  `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (create a call: form `To`, `From`, `Url`,
  `StatusCallback`, …; HTTP Basic with the account SID and auth token) and
  `POST …/Calls/{CallSid}.json` (update a live call, e.g. `Twiml`). Every request is recorded.
  An update with TwiML ends the call's media stream (Twilio sends `stop`), as Twilio does when
  a call leaves `<Connect><Stream>`.
* `PhoneLine` — the phone network's side of one call: the signed Voice webhook
  (`X-Twilio-Signature`, computed with the `twilio` library's own `RequestValidator`), then
  the Media Streams WebSocket named in the TwiML answer: `connected`, `start` (with the
  `<Parameter>`s as `customParameters`), 20 ms `media` messages of μ-law at 8 kHz in real time
  (silence when the caller says nothing), `dtmf`, `stop`; it records the agent's `media`,
  `mark` and `clear` messages with the time they arrived, and answers each `mark` as played.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from aiohttp import BasicAuth, web
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect

from actors.transports.mulaw import mulaw_to_pcm16, pcm16_to_mulaw

FRAME_S = 0.02
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES  # μ-law zero


def new_sid(prefix: str = "CA") -> str:
    return prefix + secrets.token_hex(16)


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, params))


@dataclass
class RestRequest:
    method: str
    path: str
    form: dict[str, Any]
    auth_ok: bool


class TwilioRest:
    def __init__(self) -> None:
        self.accounts: dict[str, str] = {}  # account SID -> auth token
        self.requests: list[RestRequest] = []
        self.lines: dict[str, PhoneLine] = {}  # live calls by CallSid (their media streams)
        self.created: list[dict[str, Any]] = []  # calls placed through the API
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls.json", self._create)
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self._update)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _auth_ok(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        account = request.match_info["account"]
        return account in self.accounts and (auth.login, auth.password) == (
            account, self.accounts[account])

    def add_account(self) -> tuple[str, str]:
        """A new account: (its SID, its auth token)."""
        sid, token = new_sid("AC"), secrets.token_hex(16)
        self.accounts[sid] = token
        return sid, token

    async def _form(self, request: web.Request) -> dict[str, Any]:
        form: dict[str, Any] = {}
        for key, value in (await request.post()).items():
            if key in form:  # repeated fields (StatusCallbackEvent)
                form[key] = [*([form[key]] if not isinstance(form[key], list) else form[key]),
                             value]
            else:
                form[key] = value
        return form

    async def _create(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        ok = self._auth_ok(request)
        self.requests.append(RestRequest("POST", request.path, form, ok))
        if not ok:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                                     status=401)
        sid = new_sid()
        account = request.match_info["account"]
        call = {"sid": sid, "account_sid": account, "to": form.get("To"),
                "from": form.get("From"), "status": "queued", "direction": "outbound-api",
                "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json"}
        self.created.append({**call, "form": form})
        return web.json_response(call, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        ok = self._auth_ok(request)
        self.requests.append(RestRequest("POST", request.path, form, ok))
        if not ok:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                                     status=401)
        sid = request.match_info["sid"]
        line = self.lines.get(sid)
        if line is None:
            return web.json_response({"code": 20404, "message": "not found", "status": 404},
                                     status=404)
        if form.get("Twiml"):
            line.twiml_updates.append(str(form["Twiml"]))
            asyncio.get_running_loop().create_task(line.stop())
        return web.json_response({"sid": sid, "account_sid": request.match_info["account"],
                                  "status": "in-progress"})

    def calls_placed(self, account_sid: str) -> list[dict[str, Any]]:
        return [c for c in self.created if c["account_sid"] == account_sid]

    def updates(self, call_sid: str) -> list[RestRequest]:
        return [r for r in self.requests if r.path.endswith(f"/Calls/{call_sid}.json")]


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    """The `<Stream url>` of a `<Connect>` answer and its `<Parameter>`s."""
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None, f"no <Connect><Stream> in {twiml}"
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], params


@dataclass
class PhoneLine:
    """One call as the phone network sees it (the caller's phone and Twilio's media server)."""

    app_url: str  # the API (what Twilio posts to: AICO_PUBLIC_URL)
    account_sid: str
    auth_token: str
    our_number: str   # the AICO number
    remote: str       # the other party
    call_sid: str = field(default_factory=new_sid)
    stream_sid: str = field(default_factory=lambda: new_sid("MZ"))
    rest: TwilioRest | None = None
    media: list[tuple[float, bytes]] = field(default_factory=list)  # agent μ-law, arrival time
    marks: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    twiml_updates: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    ws: ClientConnection | None = None
    _frames: deque[bytes] = field(default_factory=deque)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _seq: int = 0
    stopped: bool = False
    receive_error: str | None = None

    def form(self, *, direction: str = "inbound", status: str = "ringing",
             **extra: str) -> dict[str, str]:
        inbound = direction == "inbound"
        return {"AccountSid": self.account_sid, "CallSid": self.call_sid,
                "From": self.remote if inbound else self.our_number,
                "To": self.our_number if inbound else self.remote,
                "Direction": direction, "CallStatus": status, "ApiVersion": "2010-04-01",
                **extra}

    async def post(self, path: str, form: dict[str, str], *,
                   signature: str | None = None, token: str | None = None) -> httpx.Response:
        url = self.app_url + path
        headers = {}
        if signature is None:
            signature = sign(token or self.auth_token, url, form)
        if signature:
            headers["X-Twilio-Signature"] = signature
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(url, data=form, headers=headers)

    async def ring(self, *, direction: str = "inbound") -> httpx.Response:
        """The Voice webhook, signed as Twilio signs it."""
        return await self.post("/v1/channels/twilio/voice", self.form(direction=direction))

    async def status(self, status: str) -> httpx.Response:
        return await self.post("/v1/channels/twilio/status",
                               self.form(status=status, CallDuration="3"))

    # --- the media stream ------------------------------------------------------------------

    async def open_stream(self, twiml: str) -> None:
        url, params = stream_of(twiml)
        self.ws = await connect(url, max_size=None, ping_interval=None)
        if self.rest is not None:
            self.rest.lines[self.call_sid] = self
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                          "start": {"accountSid": self.account_sid, "streamSid": self.stream_sid,
                                    "callSid": self.call_sid, "tracks": ["inbound"],
                                    "customParameters": params,
                                    "mediaFormat": {"encoding": "audio/x-mulaw",
                                                    "sampleRate": 8000, "channels": 1}}})
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._mic())]

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        self._seq += 1
        await self.ws.send(json.dumps({**message, "sequenceNumber": str(self._seq)}))

    async def _mic(self) -> None:
        """20 ms of μ-law every 20 ms, in real time: the caller's speech, else silence."""
        start = time.monotonic()
        sent = 0
        chunk = 0
        while not self.closed.is_set():
            frame = self._frames.popleft() if self._frames else SILENCE
            chunk += 1
            with contextlib.suppress(Exception):
                await self._send({"event": "media", "streamSid": self.stream_sid,
                                  "media": {"track": "inbound", "chunk": str(chunk),
                                            "timestamp": str(sent * 20),
                                            "payload": base64.b64encode(frame).decode()}})
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * FRAME_S - time.monotonic()))

    async def _receive(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                now = time.monotonic()
                kind = message.get("event")
                if kind == "media":
                    self.media.append((now, base64.b64decode(message["media"]["payload"])))
                elif kind == "mark":
                    name = message["mark"]["name"]
                    self.marks.append((now, name))
                    await self._send({"event": "mark", "streamSid": self.stream_sid,
                                      "mark": {"name": name}})
                elif kind == "clear":
                    self.clears.append(now)
        except Exception as err:  # noqa: BLE001 - the server closed the stream
            self.receive_error = repr(err)
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def say(self, pcm16_8k: bytes) -> float:
        """Queue the caller's words (PCM16 at 8 kHz) on the microphone; returns when the last
        of them has been sent."""
        mulaw = pcm16_to_mulaw(pcm16_8k)
        mulaw += SILENCE[: (-len(mulaw)) % FRAME_BYTES]
        frames = [mulaw[i:i + FRAME_BYTES] for i in range(0, len(mulaw), FRAME_BYTES)]
        self._frames.extend(frames)
        while self._frames and not self.closed.is_set():
            await asyncio.sleep(FRAME_S)
        return time.monotonic()

    async def press(self, digit: str) -> float:
        await self._send({"event": "dtmf", "streamSid": self.stream_sid,
                          "dtmf": {"track": "inbound_track", "digit": digit}})
        return time.monotonic()

    async def stop(self) -> None:
        """The call ended on Twilio's side: `stop`, then the socket closes."""
        if self.stopped or self.ws is None:
            return
        self.stopped = True
        with contextlib.suppress(Exception):
            await self._send({"event": "stop", "streamSid": self.stream_sid,
                              "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def hang_up(self) -> None:
        await self.stop()
        await asyncio.wait_for(self.closed.wait(), 30)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task

    # --- what the caller heard ----------------------------------------------------------------

    def agent_audio(self, *, after: float = 0.0, before: float = float("inf")) -> bytes:
        """The agent's audio as PCM16 at 8 kHz."""
        return mulaw_to_pcm16(b"".join(m for t, m in self.media if after <= t < before))

    async def wait_speaking(self, *, after: float, timeout: float = 60.0) -> float:
        """When the first audible agent frame after `after` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.media:
                if t > after and _loud(m):
                    return t
            await asyncio.sleep(0.02)
        raise AssertionError(f"the agent did not speak within {timeout} s")

    async def wait_audio(self, *, after: float, timeout: float = 60.0,
                         quiet_s: float = 0.8) -> tuple[float, float]:
        """Wait for the agent to start speaking after `after` and then to stop (no audible frame
        for `quiet_s`); returns (first audible frame's arrival, last one's)."""
        deadline = time.monotonic() + timeout
        first = last = None
        while time.monotonic() < deadline:
            audible = [t for t, m in self.media if t > after and _loud(m)]
            if audible:
                first, last = audible[0], audible[-1]
                if time.monotonic() - last >= quiet_s:
                    return first, last
            await asyncio.sleep(0.05)
        raise AssertionError(f"the agent did not speak and finish within {timeout} s"
                             f" (first audible frame: {first})")


def _loud(mulaw: bytes) -> bool:
    pcm = np.frombuffer(mulaw_to_pcm16(mulaw), dtype=np.int16).astype(np.float64)
    return bool(pcm.size) and float(np.sqrt((pcm * pcm).mean())) > 300.0
