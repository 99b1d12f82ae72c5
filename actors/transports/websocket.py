"""The WebSocket transport (the web widget, tests, the peers' measuring client).

Protocol (docs/voice-protocol.md): the client's first text frame is
`{"type": "start", "sample_rate": N}`; binary frames both ways are PCM16 little-endian mono
(the caller's at N, the agent's at the rate announced in `{"type": "ready", "sample_rate": M}`);
text frames carry JSON events, the messages of `aico.voice_messages` (parsed and written there).

What a caller may send is bounded per connection (`settings.limits`): frame sizes are checked
on the raw message before anything is parsed, text frames (dtmf and other control messages) pass
a token bucket, and caller audio may not run ahead of real time. A connection that breaks a
bound gets an `error` event and is closed with the code of `CloseCode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from enum import IntEnum

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from actors.transports.frame_limits import AudioBudget, ControlBucket
from aico.settings import LimitSettings
from aico.voice_messages import (
    ENDS_CALL,
    START_USAGE,
    BadClientMessage,
    CallError,
    Dtmf,
    Hangup,
    ServerModel,
    Start,
    Stop,
    parse_client_message,
    to_wire,
)

# Refusals a flooding client may collect before it is disconnected, in bursts of the bucket.
REFUSED_BURSTS_BEFORE_CLOSE = 100


class CloseCode(IntEnum):
    """Close codes of the voice and live sockets (docs/voice-protocol.md)."""

    NORMAL = 1000
    POLICY = 1008          # control frames over the rate, caller audio faster than real time
    TOO_BIG = 1009         # a frame over the size limit
    INTERNAL = 1011        # the call's host failed; the session is marked failed
    UNAUTHORIZED = 4401    # bad, expired or already used token
    NOT_FOUND = 4404
    ENDED = 4409           # the session has ended or failed
    BUSY = 4423            # another socket holds this session's call
    TOO_MANY = 4429        # the organization's concurrent calls, or a session's observers


class ProtocolError(Exception):
    pass


class WebSocketTransport:
    def __init__(self, ws: WebSocket, *, limits: LimitSettings | None = None) -> None:
        self.ws = ws
        self.sample_rate = 16000
        self.limits = limits or LimitSettings()
        self.control = ControlBucket(rate_per_s=self.limits.voice_control_per_s,
                                     burst=self.limits.voice_control_burst)
        self.audio = AudioBudget(sample_rate=self.sample_rate,
                                 slack_s=self.limits.voice_audio_slack_s)
        # Why the server ended the connection (a broken bound), else None: the caller hung up.
        self.end_reason: str | None = None
        self._notice_at = 0.0

    async def handshake(self, *, timeout_s: float = 10.0) -> None:
        """Wait for the client's `start` message."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout_s)
        except TimeoutError as err:
            raise ProtocolError(START_USAGE) from err
        text = message.get("text")
        if isinstance(text, str) and self._too_big(text):
            await self.refuse(CloseCode.TOO_BIG, "frame_too_large", self._text_limit_message())
            raise ProtocolError("frame too large")
        try:
            start = parse_client_message(text or "")
        except BadClientMessage as err:
            raise ProtocolError(err.message if err.code == "bad_start" else START_USAGE) from None
        if not isinstance(start, Start):
            raise ProtocolError(START_USAGE)
        self.sample_rate = start.sample_rate
        self.audio = AudioBudget(sample_rate=self.sample_rate,
                                 slack_s=self.limits.voice_audio_slack_s)

    async def receive(self) -> bytes | Dtmf | Hangup | Stop | Start | None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("bytes")
            if data is not None:
                # Sizes first: nothing of an oversized frame is looked at or kept.
                if len(data) > self.limits.voice_max_audio_frame_bytes:
                    await self.refuse(CloseCode.TOO_BIG, "frame_too_large",
                                      "binary frames are limited to "
                                      f"{self.limits.voice_max_audio_frame_bytes} bytes")
                    return None
                if len(data) % 2:
                    await self._notice("bad_frame", "binary frames are PCM16 mono")
                    continue
                if not self.audio.allow(len(data)):
                    await self.refuse(CloseCode.POLICY, "audio_too_fast",
                                      "caller audio arrives faster than real time")
                    return None
                return data
            text = message.get("text") or ""
            if self._too_big(text):
                await self.refuse(CloseCode.TOO_BIG, "frame_too_large",
                                  self._text_limit_message())
                return None
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                await self._notice("bad_message", "text frames must be JSON objects")
                continue
            if event.get("type") in ENDS_CALL:
                return Stop() if event["type"] == "stop" else Hangup()  # never rate limited
            if self.control.allow():
                try:
                    return parse_client_message(event)
                except BadClientMessage as err:
                    await self._notice(err.code, err.message)
                    continue
            if self.control.refused > REFUSED_BURSTS_BEFORE_CLOSE * self.control.burst:
                await self.refuse(CloseCode.POLICY, "rate_limited",
                                  "too many control frames: the connection is closed")
                return None
            await self._notice("rate_limited",
                               f"control frames are limited to {self.control.rate_per_s:g}"
                               f" per second (bursts of {self.control.burst}); frame dropped")

    def _too_big(self, text: str) -> bool:
        limit = self.limits.voice_max_text_frame_bytes
        return len(text) > limit or len(text.encode()) > limit

    def _text_limit_message(self) -> str:
        return f"text frames are limited to {self.limits.voice_max_text_frame_bytes} bytes"

    async def _notice(self, code: str, message: str) -> None:
        """An error event about a dropped frame, at most one a second (never an amplifier)."""
        now = time.monotonic()
        if now - self._notice_at >= 1.0:
            self._notice_at = now
            await self.send_event(CallError(code=code, message=message))

    async def refuse(self, code: int, error: str, message: str) -> None:
        """Tell the caller why, then close with `code`."""
        self.end_reason = error
        await self.send_event(CallError(code=error, message=message))
        await self.close(error, code=code)

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_bytes(pcm16)

    async def send_event(self, message: ServerModel) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_text(json.dumps(to_wire(message)))

    async def close(self, reason: str, *, code: int = CloseCode.NORMAL) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason[:100])
