"""Event webhooks for integrators: register an endpoint (its signing secret is shown once), list
and delete endpoints, read each endpoint's deliveries (attempts, status codes, latency) and
redeliver one. Delivery itself is the outbox worker's (`flows.webhook_outbox`).

The URL is checked by the egress guard when it is registered (a private address is refused,
403, unless the organization's egress allow-list lets it through) and again on every send.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from aico.egress import EgressGuard
from aico.errors import NotFound, ValidationFailed
from db import webhooks as webhooks_db
from db.egress_allowlist import get_egress_allowlist
from flows.webhook_outbox import EVENT_TYPES, new_signing_secret, seal_signing_secret
from serve_apps.deps import AdminDep, PoolDep, StateDep

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES))


class WebhookOut(BaseModel):
    id: UUID
    url: str
    events: list[str]
    created_at: datetime


def _check_body(body: WebhookCreate) -> list[str]:
    parts = urlsplit(body.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("'url' must be an http(s) URL with a host",
                               details=[{"field": "url", "message": "not an http(s) URL"}])
    unknown = sorted(set(body.events) - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed(
            f"unknown events {', '.join(unknown)} in 'events'; known: {', '.join(EVENT_TYPES)}",
            details=[{"field": "events", "message": f"unknown event {e}"} for e in unknown])
    return sorted(set(body.events))


@router.post("", status_code=201)
async def create_webhook(body: WebhookCreate, principal: AdminDep, pool: PoolDep,
                         state: StateDep) -> dict[str, Any]:
    events = _check_body(body)
    allowlist = await get_egress_allowlist(pool, org_id=principal.org_id)
    await EgressGuard(allowlist=allowlist).check_url(body.url)  # 403 before anything is stored
    webhook_id = uuid.uuid4()
    secret = new_signing_secret()
    sealed = seal_signing_secret(state.settings, secret, org_id=principal.org_id,
                                 webhook_id=webhook_id)
    row = await webhooks_db.insert_webhook(
        pool, org_id=principal.org_id, webhook_id=webhook_id, url=body.url, events=events,
        key_id=sealed.key_id, nonce=sealed.nonce, ciphertext=sealed.ciphertext)
    # The only time the secret is shown: the receiver verifies signatures with it.
    return {**WebhookOut(**dict(row)).model_dump(mode="json"), "secret": secret}


@router.get("")
async def list_webhooks(principal: AdminDep, pool: PoolDep) -> dict[str, list[WebhookOut]]:
    rows = await webhooks_db.list_webhooks(pool, org_id=principal.org_id)
    return {"items": [WebhookOut(**dict(r)) for r in rows]}


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    if not await webhooks_db.delete_webhook(pool, org_id=principal.org_id, webhook_id=webhook_id):
        raise NotFound(f"webhook {webhook_id} not found")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(webhook_id: UUID, principal: AdminDep,
                          pool: PoolDep) -> dict[str, Any]:
    if await webhooks_db.get_webhook(pool, org_id=principal.org_id, webhook_id=webhook_id) is None:
        raise NotFound(f"webhook {webhook_id} not found")
    rows = await webhooks_db.list_deliveries(pool, org_id=principal.org_id,
                                             webhook_id=webhook_id)
    items = []
    for r in rows:
        event_at, delivered_at = r["event_at"], r["delivered_at"]
        items.append({
            "id": r["id"], "event": r["event_type"], "session_id": r["session_id"],
            "status": r["status"], "attempts": r["attempt_log"],
            "event_at": event_at, "delivered_at": delivered_at,
            "next_attempt_at": r["next_attempt_at"] if r["status"] == "pending" else None,
            # From the event's commit to the receiver's 2xx.
            "delivery_latency_ms": (delivered_at - event_at).total_seconds() * 1000
            if delivered_at else None,
            "payload": r["payload"],
        })
    return {"items": items}


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(webhook_id: UUID, delivery_id: UUID, principal: AdminDep,
                    pool: PoolDep) -> dict[str, Any]:
    if not await webhooks_db.redeliver(pool, org_id=principal.org_id, webhook_id=webhook_id,
                                       delivery_id=delivery_id):
        raise NotFound(f"delivery {delivery_id} of webhook {webhook_id} not found")
    return {"id": delivery_id, "status": "pending"}
