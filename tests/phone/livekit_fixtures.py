"""What the LiveKit SIP tests share: the stand-in server, an API app whose settings point at
it, and an organization with a published flow and a LiveKit number."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from livekit_standin import LiveKitStandIn, signed_webhook, sip_participant_joined
from phone_api import add_number, admin_client, publish_flow

from aico.settings import LiveKitSettings, Settings

GREETER = {
    "name": "lk-greeter",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "greet", "type": "say", "text": "Hello from AICO."},
              {"id": "hear", "type": "listen", "into": "text"},
              {"id": "bye", "type": "end"}],
    "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "hear"},
              {"from": "hear", "to": "bye"}],
}


def random_number(prefix: str = "+1555") -> str:
    return prefix + "".join(str(secrets.randbelow(10)) for _ in range(12 - len(prefix)))


@pytest.fixture
def livekit() -> Iterator[LiveKitStandIn]:
    server = LiveKitStandIn()
    yield server
    server.close()


@dataclass
class LiveKitOrg:
    id: UUID
    api: httpx.AsyncClient  # admin token
    livekit_side: httpx.AsyncClient  # no token: LiveKit's webhooks
    standin: LiveKitStandIn
    flow_id: str
    number: dict[str, Any]

    async def deliver(self, event: dict[str, Any], *, secret: str | None = None,
                      tamper: bool = False) -> httpx.Response:
        body, headers = signed_webhook(event, api_key=self.standin.api_key,
                                       api_secret=secret or self.standin.api_secret)
        if tamper:
            body = body.replace(b"+1", b"+4", 1)
        return await self.livekit_side.post("/v1/channels/livekit/webhook", content=body,
                                            headers=headers)

    def caller_joins(self, *, room: str, caller: str = "+12125550123") -> dict[str, Any]:
        return sip_participant_joined(room_name=room, called=self.number["number"],
                                      caller=caller)


def livekit_settings(settings: Settings, standin: LiveKitStandIn) -> Settings:
    return settings.model_copy(update={"livekit": LiveKitSettings(
        url=standin.ws_url, api_key=standin.api_key, api_secret=standin.api_secret)})


@pytest.fixture
async def lk_org(settings: Settings, app_pool: asyncpg.Pool, pool: asyncpg.Pool,
                 livekit: LiveKitStandIn
                 ) -> AsyncIterator[Callable[..., Awaitable[LiveKitOrg]]]:
    """make(flow=..., number_settings=...): an organization on an app pointed at the stand-in,
    with the flow published and a LiveKit number answering with it."""
    from actors.host import LocalVoiceHost
    from serve_apps.api import create_app

    lk = livekit_settings(settings, livekit)
    # The call's pipeline runs in this process (no Ray), whatever other tests started.
    app = create_app(lk, pool=app_pool, voice_host=LocalVoiceHost(app_pool, lk))
    clients: list[httpx.AsyncClient] = []

    async def make(*, flow: dict[str, Any] | None = None,
                   number_settings: dict[str, Any] | None = None) -> LiveKitOrg:
        transport = httpx.ASGITransport(app=app)
        org_id, api = await admin_client(pool, prefix="lk", transport=transport,
                                         base_url="http://aico.test")
        side = httpx.AsyncClient(transport=transport, base_url="http://aico.test", timeout=60)
        clients.extend([api, side])
        flow_id = await publish_flow(api, flow or GREETER)
        number = await add_number(api, number=random_number(), flow_id=flow_id,
                                  provider="livekit", settings=number_settings or {})
        return LiveKitOrg(id=org_id, api=api, livekit_side=side, standin=livekit,
                          flow_id=flow_id, number=number)

    yield make
    for client in clients:
        await client.aclose()
    await app.state.aico.close()
