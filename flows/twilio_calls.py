"""Twilio: the carrier (REST with the `twilio` client), its TwiML answers and webhook signatures.

    ok = signature_valid(auth_token, url, form_params, request.headers["X-Twilio-Signature"])
    twiml = stream_twiml(media_url, {"session": sid, "token": token})   # <Connect><Stream>
    carrier = TwilioCarrier(settings)
    sid = await carrier.place_call(number=n, to="+12125550123", session_id=s, secrets=secrets)
    await carrier.transfer(number=n, call_ref=sid, to="+12125550199", warm=False,
                           summary=None, secrets=secrets)             # <Dial> on the live call

A Twilio number's settings: `account_sid` and `auth_token_secret` (the organization secret that
holds its auth token, which signs Twilio's webhooks and authenticates our REST calls). The REST
base URL is `AICO_TELEPHONY_TWILIO_API_URL` (a loopback fake in tests); webhook and media URLs
are built from `AICO_PUBLIC_URL`, the address Twilio reaches this server at, which is also the
URL Twilio signed.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from aico.settings import Settings
from flows.telephony import CarrierError, PhoneNumber, register_carrier

PROVIDER = "twilio"
VOICE_PATH = "/v1/channels/twilio/voice"
STATUS_PATH = "/v1/channels/twilio/status"
MEDIA_PATH = "/v1/channels/twilio/media"
REST_TIMEOUT_S = 10.0


def public_base(settings: Settings) -> str:
    return settings.base_url.rstrip("/")


def webhook_url(settings: Settings, path: str) -> str:
    return public_base(settings) + path


def media_stream_url(settings: Settings) -> str:
    base = public_base(settings)
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + MEDIA_PATH
    return "ws://" + base.removeprefix("http://") + MEDIA_PATH


def signature_valid(auth_token: str, url: str, params: dict[str, str],
                    signature: str | None) -> bool:
    """Twilio's `X-Twilio-Signature` (HMAC-SHA1 of the URL and the sorted form parameters under
    the auth token), checked in constant time by the `twilio` library."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def stream_twiml(media_url: str, parameters: dict[str, str]) -> str:
    """Answer a call by streaming its audio to `media_url` (Media Streams, both ways)."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=media_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def dial_twiml(to: str, *, caller_id: str | None = None) -> str:
    """Move the call to `to` (a transfer)."""
    response = VoiceResponse()
    dial = Dial(caller_id=caller_id) if caller_id else Dial()
    dial.number(to)
    response.append(dial)
    return str(response)


def apology_twiml(text: str) -> str:
    """Say `text` and hang up (the call cannot be answered by its flow)."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def empty_twiml() -> str:
    return str(VoiceResponse())


class TwilioCarrier:
    """Outbound calls and transfers through Twilio's REST API."""

    provider = PROVIDER

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self, number: PhoneNumber, secrets: dict[str, str]) -> tuple[Client, Any]:
        http = AsyncTwilioHttpClient(timeout=REST_TIMEOUT_S)
        client = Client(str(number.settings.get("account_sid") or ""),
                        secrets.get("auth_token_secret", ""), http_client=http)
        client.api.base_url = self.settings.telephony.twilio_api_url.rstrip("/")
        return client, http

    async def place_call(self, *, number: PhoneNumber, to: str, session_id: UUID,
                         secrets: dict[str, str]) -> str:
        client, http = self._client(number, secrets)
        try:
            call = await client.calls.create_async(
                to=to, from_=number.number, method="POST",
                url=webhook_url(self.settings, VOICE_PATH),
                status_callback=webhook_url(self.settings, STATUS_PATH),
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"])
        except (TwilioException, OSError) as err:
            raise _carrier_error("placing the call", err) from None
        finally:
            await http.close()
        return str(call.sid)

    async def transfer(self, *, number: PhoneNumber, call_ref: str, to: str, warm: bool,
                       summary: str | None, secrets: dict[str, str]) -> None:
        # Twilio's media stream ends when the call's TwiML changes, so a warm transfer is the
        # same <Dial>: the agent cannot stay on to introduce the caller on this path.
        client, http = self._client(number, secrets)
        try:
            await client.calls(call_ref).update_async(
                twiml=dial_twiml(to, caller_id=number.number))
        except (TwilioException, OSError) as err:
            raise _carrier_error("transferring the call", err) from None
        finally:
            await http.close()


def _carrier_error(doing: str, err: Exception) -> CarrierError:
    if isinstance(err, TwilioRestException):
        return CarrierError(f"Twilio refused {doing}: {err.status} {err.msg}",
                            details={"status": err.status, "twilio_code": err.code})
    return CarrierError(f"Twilio could not be reached {doing}: {type(err).__name__}")


register_carrier(PROVIDER, TwilioCarrier, required_settings=("account_sid", "auth_token_secret"))
