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

from typing import Any

from actors.transports.mulaw import PHONE_RATE
from actors.transports.twilio_media import StreamRefused, StreamStart, TwilioMediaTransport


class TelnyxMediaTransport(TwilioMediaTransport):
    carrier = "Telnyx"

    def _started(self, event: dict[str, Any]) -> StreamStart:
        start = event["start"]
        media_format = start.get("media_format") or {}
        if media_format and (str(media_format.get("encoding")).upper() != "PCMU"
                             or int(media_format.get("sample_rate") or 0) != PHONE_RATE):
            raise StreamRefused(f"unsupported media format {media_format}")
        self.stream_sid = str(event.get("stream_id") or "")[:128]
        return StreamStart(call_sid=str(start.get("call_control_id") or "")[:128],
                           stream_sid=self.stream_sid, account_sid="", parameters={})

    async def _send(self, message: dict[str, Any]) -> None:
        # Telnyx's outbound messages carry no stream id (the socket is the stream).
        message.pop("streamSid", None)
        await super()._send(message)
