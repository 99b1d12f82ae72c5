"""The WebSocket transport (the web widget, tests, the peers' measuring client).

Protocol (docs/voice-protocol.md): the client's first text frame is
`{"type": "start", "sample_rate": N}`; binary frames both ways are PCM16 little-endian mono
(the caller's at N, the agent's at the rate announced in `{"type": "ready", "sample_rate": M}`);
text frames carry JSON events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

ALLOWED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_FRAME_BYTES = 64 * 1024


class ProtocolError(Exception):
    pass


class WebSocketTransport:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.sample_rate = 16000

    async def handshake(self, *, timeout_s: float = 10.0) -> None:
        """Wait for the client's `start` message."""
        try:
            message = await asyncio.wait_for(self.ws.receive_text(), timeout_s)
            start = json.loads(message)
        except (TimeoutError, ValueError, KeyError) as err:
            raise ProtocolError("expected {\"type\": \"start\", \"sample_rate\": N} first") \
                from err
        if not isinstance(start, dict) or start.get("type") != "start":
            raise ProtocolError("expected {\"type\": \"start\", \"sample_rate\": N} first")
        rate = start.get("sample_rate", 16000)
        if rate not in ALLOWED_RATES:
            raise ProtocolError(f"sample_rate must be one of {ALLOWED_RATES}")
        self.sample_rate = int(rate)

    async def receive(self) -> bytes | dict[str, Any] | None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("bytes")
            if data is not None:
                if len(data) > MAX_FRAME_BYTES or len(data) % 2:
                    await self.send_event({"type": "error", "code": "bad_frame",
                                           "message": "binary frames are PCM16 mono, < 64 KiB"})
                    continue
                return data
            text = message.get("text")
            try:
                event = json.loads(text or "")
            except ValueError:
                event = None
            if isinstance(event, dict):
                return event
            await self.send_event({"type": "error", "code": "bad_message",
                                   "message": "text frames must be JSON objects"})

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_bytes(pcm16)

    async def send_event(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_text(json.dumps(event, default=str))

    async def close(self, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code=1000, reason=reason[:100])
