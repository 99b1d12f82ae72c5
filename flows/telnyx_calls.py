"""Telnyx (TeXML with media streaming): the answer to a call, and where its stream goes.

    verify_telnyx_signature(raw, signature=..., timestamp=..., public_key=...)  # 403 otherwise
    texml = stream_texml(media_url(settings, call_sid, parameters))  # <Start><Stream …/></Start>

A Telnyx number's settings: `public_key`, the Telnyx account's webhook public key (base64,
Mission Control Portal → Keys & Credentials; public, so not a secret). Its TeXML application's
voice URL is `AICO_PUBLIC_URL` + `/v1/channels/telnyx/voice`.

The answer starts a bidirectional RTP stream (PCMU, 8 kHz) to `/v1/channels/telnyx/media` and
holds the call open with a long `<Pause>`. The stream's `start` names Telnyx's call-control id,
not the TeXML `CallSid`, so the URL carries the call, its session and a single-use stream token
(`flows.phone_calls.stream_parameters`) as query parameters. Outbound calls and transfers
through Telnyx's REST API are not written yet: a Telnyx number answers calls.
"""

from __future__ import annotations

from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from aico.settings import Settings

PROVIDER = "telnyx"
VOICE_PATH = "/v1/channels/telnyx/voice"
MEDIA_PATH = "/v1/channels/telnyx/media"
# Longest TeXML pause: the stream, not the script, decides when the call ends.
HOLD_S = 14400


def media_url(settings: Settings, call_sid: str, parameters: dict[str, str]) -> str:
    base = settings.base_url.rstrip("/")
    ws = "wss://" + base.removeprefix("https://") if base.startswith("https://") \
        else "ws://" + base.removeprefix("http://")
    return f"{ws}{MEDIA_PATH}?{urlencode({'call': call_sid, **parameters})}"


def stream_texml(url: str) -> str:
    """Stream the call's audio both ways (RTP, PCMU) to `url`, and keep the call up."""
    return ('<?xml version="1.0" encoding="UTF-8"?><Response><Start>'
            f'<Stream url={quoteattr(url)} track="inbound_track" bidirectionalMode="rtp"'
            ' bidirectionalCodec="PCMU" bidirectionalSamplingRate="8000" /></Start>'
            f'<Pause length="{HOLD_S}" /></Response>')


def say_and_hang_up_texml(text: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><Response>'
            f'<Say>{escape(text)}</Say><Hangup /></Response>')


def empty_texml() -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response />'
