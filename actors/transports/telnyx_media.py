"""Telnyx media streaming: a phone call's audio over Telnyx's WebSocket, as a `CallTransport`.

Telnyx's messages (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming)
differ from Twilio's Media Streams only in their names, so this is Twilio's transport with
Telnyx's words:

* Telnyx → us: `connected`; `start` (`stream_id`, `start.call_control_id`,
  `start.media_format`: PCMU, 8000 Hz, mono); `media` (`media.track` inbound, base64 PCMU
  RTP payload); `dtmf` (`dtmf.digit`); `mark`; `stop`.
* us → Telnyx (bidirectional RTP mode): `media` (`media.payload`, base64 PCMU), `mark`
  (`mark.name`), and `clear` on barge-in.

    transport = TelnyxMediaTransport(ws, limits=settings.limits)
    start = await transport.handshake()     # StreamStart(call_sid=<call_control_id>, ...)
    await run_call(transport, host, session_id)
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors.transports.frame_limits import AudioBudget
from actors.transports.mulaw import PHONE_RATE
from actors.transports.twilio_media import StreamRefused, StreamStart, TwilioMediaTransport


class TelnyxMediaTransport(TwilioMediaTransport):
    async def handshake(self, *, timeout_s: float = 10.0) -> StreamStart:
        """Read `connected` (optional) and `start`."""
        for _ in range(2):
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout_s)
            except TimeoutError as err:
                raise StreamRefused("no start message") from err
            event = self._parse(message)
            if event is None:
                raise StreamRefused("expected Telnyx's connected and start messages")
            if event.get("event") == "connected":
                continue
            if event.get("event") != "start" or not isinstance(event.get("start"), dict):
                raise StreamRefused("expected a start message")
            start = event["start"]
            media_format = start.get("media_format") or {}
            if media_format and (str(media_format.get("encoding")).upper() != "PCMU"
                                 or int(media_format.get("sample_rate") or 0) != PHONE_RATE):
                raise StreamRefused(f"unsupported media format {media_format}")
            self.stream_sid = str(event.get("stream_id") or "")[:128]
            self.audio = AudioBudget(sample_rate=PHONE_RATE,
                                     slack_s=self.limits.voice_audio_slack_s)
            return StreamStart(call_sid=str(start.get("call_control_id") or "")[:128],
                               stream_sid=self.stream_sid, account_sid="", parameters={})
        raise StreamRefused("expected a start message")

    async def _send(self, message: dict[str, Any]) -> None:
        # Telnyx's outbound messages carry no stream id (the socket is the stream).
        message.pop("streamSid", None)
        await super()._send(message)
