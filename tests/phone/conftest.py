"""Phone test fixtures: a fake Twilio (REST API and phone network) on loopback, the API served by
uvicorn (Media Streams need a real WebSocket server) at the public URL Twilio signs, the offline
models loaded once, a caller voice made 8 kHz like a phone line and a Whisper ear
(`voice_support`, shared with the voice tests), and an organization with a Twilio number
answered by a phone flow.

The models' mode is pinned (`AICO_MODELS=inprocess`, in the server's settings too), as the voice
tests pin it, so a call takes the same path whatever other test packages left running."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fake_twilio import PhoneLine, TwilioRest
from phone_api import add_number, admin_client, allow_dialing, publish_flow, put_secret
from phone_flows import phone_flow
from voice_support import (
    MODELS_MODE,
    Voices,
    loopback_socket,
    models_mode,
    served,
    warm_call_models,
)

from aico.settings import ModelSettings, Settings, TelephonySettings


@pytest.fixture(autouse=True, scope="module")
def _pinned_models_mode() -> Iterator[None]:
    with models_mode(MODELS_MODE):
        yield


@pytest.fixture(scope="session")
async def twilio_rest() -> AsyncIterator[TwilioRest]:
    rest = TwilioRest()
    await rest.start()
    yield rest
    await rest.close()


@dataclass
class PhoneServer:
    url: str
    settings: Settings
    app: Any


@pytest.fixture(scope="session")
async def phone_models() -> Any:
    return await warm_call_models()


@pytest.fixture(scope="session")
async def phone_server(settings: Settings, app_pool: asyncpg.Pool, twilio_rest: TwilioRest,
                       phone_models: Any) -> AsyncIterator[PhoneServer]:
    """The API at its public URL (what Twilio signs and calls back), its Twilio REST base URL
    the fake's. The socket is bound first (port 0) so the URL is known before the app."""
    from actors.host import LocalVoiceHost
    from serve_apps.api import create_app

    sock = loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    answering = settings.model_copy(update={
        "public_url": url, "serving": ModelSettings(mode=MODELS_MODE),
        "telephony": TelephonySettings(twilio_api_url=twilio_rest.url)})
    app = create_app(answering, pool=app_pool,
                     voice_host=LocalVoiceHost(app_pool, answering))
    async with served(app, sock=sock, name="the phone test server"):
        yield PhoneServer(url=url, settings=answering, app=app)


@pytest.fixture(scope="session")
def voices(phone_models: Any) -> Voices:
    return Voices(*phone_models, caller_rate=8000)


@dataclass
class TwilioOrg:
    id: UUID
    api: httpx.AsyncClient  # admin token
    number: str
    number_id: str
    flow_id: str
    account_sid: str
    auth_token: str
    server: PhoneServer
    rest: TwilioRest

    def line(self, remote: str = "+12125550123", **options: Any) -> PhoneLine:
        return PhoneLine(app_url=self.server.url, account_sid=self.account_sid,
                         auth_token=self.auth_token, our_number=self.number, remote=remote,
                         rest=self.rest, **options)


def fresh_number() -> str:
    return f"+1555{secrets.randbelow(10**7):07d}"


@pytest.fixture
async def twilio_org(phone_server: PhoneServer, pool: asyncpg.Pool, twilio_rest: TwilioRest
                     ) -> AsyncIterator[Callable[..., Awaitable[TwilioOrg]]]:
    """An organization with the phone flow published, its Twilio auth token stored as a
    secret, a Twilio number, and a dialing policy that allows +1 (not premium)."""
    opened: list[httpx.AsyncClient] = []

    async def make(*, store_token: bool = True, flow: dict[str, Any] | None = None) -> TwilioOrg:
        org_id, api = await admin_client(pool, prefix="tw", base_url=phone_server.url)
        opened.append(api)
        flow_id = await publish_flow(api, flow or phone_flow())
        account_sid, auth_token = twilio_rest.add_account()
        if store_token:
            await put_secret(api, "TWILIO_AUTH_TOKEN", auth_token)
        number = fresh_number()
        made = await add_number(api, number=number, flow_id=flow_id, settings={
            "account_sid": account_sid, "auth_token_secret": "TWILIO_AUTH_TOKEN"})
        await allow_dialing(api, country_codes=["1"])
        return TwilioOrg(id=org_id, api=api, number=number, number_id=made["id"],
                         flow_id=flow_id, account_sid=account_sid, auth_token=auth_token,
                         server=phone_server, rest=twilio_rest)

    yield make
    for client in opened:
        with contextlib.suppress(Exception):
            await client.aclose()
