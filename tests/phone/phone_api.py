"""Small API steps the phone tests share: an organization with an admin client, publish a
flow, configure a number, set the dialing policy, store a secret."""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from db.api_clients import insert_api_client, new_token
from db.organizations import insert_organization


async def admin_client(pool: asyncpg.Pool, *, prefix: str,
                       **client: Any) -> tuple[UUID, httpx.AsyncClient]:
    """A new organization (slug `prefix-…`) and an API client holding an admin token of it;
    `client` is httpx's (base_url, transport). The caller closes the client."""
    slug = f"{prefix}-{secrets.token_hex(5)}"
    org = await insert_organization(pool, slug=slug, name=slug)
    token = new_token()
    await insert_api_client(pool, org_id=org["id"], name="test", token=token, role="admin")
    return org["id"], httpx.AsyncClient(timeout=60, **client,
                                        headers={"Authorization": f"Bearer {token}"})


async def publish_flow(api: httpx.AsyncClient, document: dict[str, Any]) -> str:
    made = await api.post("/v1/flows", json={"name": document["name"], "document": document})
    assert made.status_code == 201, made.text
    flow_id = made.json()["id"]
    published = await api.post(f"/v1/flows/{flow_id}/publish")
    assert published.status_code == 201, published.text
    return str(flow_id)


async def put_secret(api: httpx.AsyncClient, name: str, value: str) -> None:
    stored = await api.put(f"/v1/secrets/{name}", json={"value": value})
    assert stored.status_code in (200, 201), stored.text


async def add_number(api: httpx.AsyncClient, *, number: str, flow_id: str,
                     provider: str = "twilio", settings: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    made = await api.post("/v1/phone-numbers", json={
        "number": number, "flow_id": flow_id, "provider": provider,
        "settings": settings if settings is not None else {}})
    assert made.status_code == 201, made.text
    return dict(made.json())


async def allow_dialing(api: httpx.AsyncClient, *, country_codes: list[str] | None = None,
                        prefixes: list[str] | None = None, premium: bool = False) -> None:
    put = await api.put("/v1/org/dialing-policy", json={
        "allowed_country_codes": country_codes or [], "allowed_prefixes": prefixes or [],
        "allow_premium": premium})
    assert put.status_code == 200, put.text
