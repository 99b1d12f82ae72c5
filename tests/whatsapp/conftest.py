"""Fixtures for the WhatsApp channel: a Graph API stand-in on loopback, an API app whose settings
point at it, and an organization with a published echo flow and a configured number."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from graph_standin import GraphStandIn, sign

from aico.settings import Settings, WhatsAppSettings
from db.api_clients import insert_api_client, new_token
from db.organizations import insert_organization

# Every other API replica of this test run (the shared app, a Serve replica started by the Ray
# fixtures) would otherwise run a WhatsApp worker over the same database and claim these
# tests' messages, sending them to Meta's real URL. Only the apps built here process WhatsApp.
os.environ.setdefault("AICO_WHATSAPP_WORKER", "false")

ECHO_FLOW = {
    "name": "wa-echo",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "greet", "type": "say", "text": "Hi! I echo."},
              {"id": "hear", "type": "listen", "into": "text"},
              {"id": "echo", "type": "say", "text": "Echo: {{ text }}"}],
    "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "hear"},
              {"from": "hear", "to": "echo"}, {"from": "echo", "to": "hear"}],
}


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    server = GraphStandIn(token="EAAG-test-" + secrets.token_hex(8))
    yield server
    server.close()


def wa_settings(settings: Settings, graph: GraphStandIn, **options: Any) -> Settings:
    options.setdefault("worker", True)  # the environment turns it off for other apps (above)
    whatsapp = WhatsAppSettings(graph_url=graph.url, poll_s=0.1, retry_base_s=0.05, **options)
    return settings.model_copy(update={"whatsapp": whatsapp})


@pytest.fixture
async def make_wa_app(settings: Settings, app_pool: asyncpg.Pool,
                      graph: GraphStandIn) -> AsyncIterator[Callable[..., Any]]:
    """Build an API app (an API replica) pointed at the stand-in; closed after the test."""
    from serve_apps.api import create_app

    apps: list[Any] = []

    def make(**options: Any) -> Any:
        app = create_app(wa_settings(settings, graph, **options), pool=app_pool)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.state.aico.close()


@dataclass
class WhatsAppOrg:
    id: UUID
    api: httpx.AsyncClient  # admin bearer token, to the app
    webhook: httpx.AsyncClient  # no token: Meta's side
    phone_number_id: str
    number_id: str
    flow_id: str
    app_secret: str
    verify_token: str

    async def deliver(self, payload: dict[str, Any], *, secret: str | None = None,
                      client: httpx.AsyncClient | None = None) -> httpx.Response:
        raw = json.dumps(payload).encode()
        return await (client or self.webhook).post(
            "/v1/channels/whatsapp/webhook", content=raw,
            headers={"content-type": "application/json",
                     "X-Hub-Signature-256": sign(secret or self.app_secret, raw)})


def clients_for(app: Any, token: str) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    return (httpx.AsyncClient(transport=transport, base_url="http://aico.test", timeout=60,
                              headers={"Authorization": f"Bearer {token}"}),
            httpx.AsyncClient(transport=transport, base_url="http://aico.test", timeout=60))


@pytest.fixture
async def wa_org(make_wa_app: Callable[..., Any], pool: asyncpg.Pool,
                 graph: GraphStandIn) -> AsyncIterator[Callable[..., Awaitable[WhatsAppOrg]]]:
    """An organization with the echo flow published, its Meta secrets stored and a number."""
    opened: list[httpx.AsyncClient] = []

    async def make(app: Any | None = None, flow: dict[str, Any] | None = None) -> WhatsAppOrg:
        app = app or make_wa_app()
        slug = "wa-" + secrets.token_hex(5)
        org = await insert_organization(pool, slug=slug, name=slug)
        token = new_token()
        await insert_api_client(pool, org_id=org["id"], name="test", token=token, role="admin")
        api, webhook = clients_for(app, token)
        opened.extend([api, webhook])
        made = await api.post("/v1/flows", json={"name": "wa-echo",
                                                 "document": flow or ECHO_FLOW})
        assert made.status_code == 201, made.text
        flow_id = made.json()["id"]
        assert (await api.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
        app_secret = "meta-app-secret-" + secrets.token_hex(8)
        for name, value in (("meta_app_secret", app_secret), ("meta_token", graph.token)):
            assert (await api.put(f"/v1/secrets/{name}", json={"value": value})).status_code \
                in (200, 201)
        phone_number_id = str(10**14 + secrets.randbelow(10**14))
        verify_token = "verify-" + secrets.token_hex(8)
        number = await api.post("/v1/channels/whatsapp/numbers", json={
            "phone_number_id": phone_number_id, "display_number": "+1 555 000 1111",
            "flow_id": flow_id, "verify_token": verify_token,
            "app_secret_secret": "meta_app_secret", "access_token_secret": "meta_token"})
        assert number.status_code == 201, number.text
        return WhatsAppOrg(id=org["id"], api=api, webhook=webhook,
                           phone_number_id=phone_number_id, number_id=number.json()["id"],
                           flow_id=flow_id, app_secret=app_secret, verify_token=verify_token)

    yield make
    for client in opened:
        await client.aclose()

