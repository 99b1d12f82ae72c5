"""Twilio Media Streams: a phone call's audio over Twilio's WebSocket, as a `CallTransport`.

Twilio's protocol (JSON text frames; https://www.twilio.com/docs/voice/media-streams):

* Twilio → us: `connected`; `start` (`start.callSid`, `start.streamSid`,
  `start.customParameters`, `start.mediaFormat`: audio/x-mulaw, 8000 Hz, mono); `media`
  (`media.payload`: base64 μ-law, 20 ms per message); `dtmf` (`dtmf.digit`); `mark`
  (`mark.name`: audio we sent up to that mark has played); `stop` (the call ended).
* us → Twilio: `media` (base64 μ-law), `mark` (tell us when playback reaches here), `clear`
  (drop the audio buffered for playback: barge-in).

    transport = TwilioMediaTransport(ws, limits=settings.limits)
    start = await transport.handshake()            # StreamStart(call_sid, stream_sid, params)
    await run_call(transport, host, session_id)    # the same bridge as the voice WebSocket

Caller audio goes to the pipeline as PCM16 at 8 kHz (`sample_rate`; the pipeline resamples
once); agent audio is resampled to 8 kHz, μ-law encoded and sent in 20 ms messages. At the end
of each agent utterance a `mark` is sent; `marks_played` lists those Twilio reported back. A
`transfer` event is handed to `on_transfer` before anything else is sent, so the call is
moved while its stream is still up. The bounds of the voice WebSocket hold here too (frame
size, DTMF through a token bucket, caller audio no faster than real time).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from actors.transports.frame_limits import AudioBudget, ControlBucket
from actors.transports.mulaw import PHONE_RATE, mulaw_to_pcm16, pcm16_to_mulaw
from aico.settings import LimitSettings
from aico.voice_messages import (
    AgentSpeechEnded,
    CallTransferred,
    Dtmf,
    Hangup,
    Interrupted,
    ServerModel,
    Start,
    Stop,
    to_wire,
)
from providers.pcm import resample_pcm16

log = logging.getLogger("aico.actors.transports.twilio_media")

FRAME_BYTES = PHONE_RATE // 50  # 20 ms of μ-law
# A `media` message with 20 ms of audio is ≈ 300 bytes; Twilio never sends one near this.
MAX_MESSAGE_BYTES = 16 * 1024
DTMF_DIGITS = frozenset("0123456789*#ABCD")


class StreamRefused(Exception):
    """The stream's first messages were not Twilio's `connected` / `start`."""


@dataclass(frozen=True)
class StreamStart:
    call_sid: str
    stream_sid: str
    account_sid: str
    parameters: dict[str, str] = field(default_factory=dict)


class TwilioMediaTransport:
    sample_rate = PHONE_RATE

    def __init__(self, ws: WebSocket, *, limits: LimitSettings | None = None,
                 on_transfer: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.ws = ws
        self.limits = limits or LimitSettings()
        self.on_transfer = on_transfer
        self.control = ControlBucket(rate_per_s=self.limits.voice_control_per_s,
                                     burst=self.limits.voice_control_burst)
        self.audio = AudioBudget(sample_rate=PHONE_RATE, slack_s=self.limits.voice_audio_slack_s)
        self.stream_sid = ""
        self.end_reason: str | None = None
        self.marks_sent: list[str] = []
        self.marks_played: list[str] = []
        self._pending = b""  # agent μ-law short of a whole 20 ms message
        self._send_lock = asyncio.Lock()

    carrier = "Twilio"

    async def handshake(self, *, timeout_s: float = 10.0) -> StreamStart:
        """Read `connected` (optional) and `start`."""
        for _ in range(2):
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout_s)
            except TimeoutError as err:
                raise StreamRefused("no start message") from err
            event = self._parse(message)
            if event is None:
                raise StreamRefused(f"expected {self.carrier}'s connected and start messages")
            if event.get("event") == "connected":
                continue
            if event.get("event") != "start" or not isinstance(event.get("start"), dict):
                raise StreamRefused("expected a start message")
            started = self._started(event)
            self.audio = AudioBudget(sample_rate=PHONE_RATE,
                                     slack_s=self.limits.voice_audio_slack_s)
            return started
        raise StreamRefused("expected a start message")

    def _started(self, event: dict[str, Any]) -> StreamStart:
        """The carrier's `start` message: its media format checked, the stream's ids read."""
        start = event["start"]
        media_format = start.get("mediaFormat") or {}
        if media_format and (media_format.get("encoding") != "audio/x-mulaw"
                             or int(media_format.get("sampleRate") or 0) != PHONE_RATE):
            raise StreamRefused(f"unsupported media format {media_format}")
        params = start.get("customParameters") or {}
        self.stream_sid = str(event.get("streamSid") or start.get("streamSid") or "")[:64]
        return StreamStart(call_sid=str(start.get("callSid") or "")[:64],
                           stream_sid=self.stream_sid,
                           account_sid=str(start.get("accountSid") or "")[:64],
                           parameters={str(k)[:64]: str(v)[:1024]
                                       for k, v in dict(params).items()})

    def _parse(self, message: Mapping[str, Any]) -> dict[str, Any] | None:
        if message.get("type") == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None and message.get("bytes") is not None:
            text = message["bytes"].decode("utf-8", "replace")
        if not isinstance(text, str) or len(text) > MAX_MESSAGE_BYTES:
            return None
        try:
            event = json.loads(text)
        except ValueError:
            return None
        return event if isinstance(event, dict) else None

    async def receive(self) -> bytes | Dtmf | Hangup | Stop | Start | None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message.get("type") == "websocket.disconnect":
                return None
            size = len(message.get("text") or message.get("bytes") or b"")
            if size > MAX_MESSAGE_BYTES:
                self.end_reason = "frame_too_large"
                await self.close("frame_too_large", code=1009)
                return None
            event = self._parse(message)
            if event is None:
                continue  # not JSON: dropped, nothing kept
            kind = event.get("event")
            if kind == "media":
                media = event.get("media") or {}
                if media.get("track", "inbound") not in ("inbound", "inbound_track"):
                    continue
                try:
                    payload = base64.b64decode(str(media.get("payload") or ""), validate=True)
                except (binascii.Error, ValueError):
                    continue
                if not payload:
                    continue
                if not self.audio.allow(len(payload) * 2):
                    self.end_reason = "audio_too_fast"
                    await self.close("audio_too_fast", code=1008)
                    return None
                return mulaw_to_pcm16(payload)
            if kind == "dtmf":
                digit = str((event.get("dtmf") or {}).get("digit") or "")
                if digit in DTMF_DIGITS and self.control.allow():
                    return Dtmf(digit=digit)
                continue
            if kind == "mark":
                name = str((event.get("mark") or {}).get("name") or "")[:64]
                if name in self.marks_sent and name not in self.marks_played:
                    self.marks_played.append(name)
                continue
            if kind == "stop":
                return None  # the call ended (the caller hung up, or it was moved)

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None:
        if sample_rate != PHONE_RATE:
            pcm16 = resample_pcm16(pcm16, sample_rate, PHONE_RATE)
        data = self._pending + pcm16_to_mulaw(pcm16)
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        for i in range(0, whole, FRAME_BYTES):
            await self._send_media(data[i:i + FRAME_BYTES])

    async def _send_media(self, mulaw: bytes) -> None:
        await self._send({"event": "media", "streamSid": self.stream_sid,
                          "media": {"payload": base64.b64encode(mulaw).decode()}})

    async def send_event(self, message: ServerModel) -> None:
        if isinstance(message, Interrupted):
            self._pending = b""
            await self._send({"event": "clear", "streamSid": self.stream_sid})
        elif isinstance(message, AgentSpeechEnded):
            if self._pending:
                await self._send_media(self._pending.ljust(FRAME_BYTES, b"\xff"))
                self._pending = b""
            name = f"agent-{len(self.marks_sent) + 1}"
            self.marks_sent.append(name)
            await self._send({"event": "mark", "streamSid": self.stream_sid,
                              "mark": {"name": name}})
        elif isinstance(message, CallTransferred) and self.on_transfer is not None:
            try:
                await self.on_transfer(to_wire(message))
            except Exception:  # the caller stays on the line with the agent
                log.exception("stream %s: transfer failed", self.stream_sid)

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            with contextlib.suppress(Exception):
                await self.ws.send_text(json.dumps(message))

    async def close(self, reason: str, *, code: int = 1000) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason[:100])
