"""Webhooks, their outbox of deliveries and each delivery's attempts (migration 0082).

Deliveries are queued by triggers in the transaction that commits a session's events; the
worker claims due ones across organizations with `claim_due_deliveries` (a narrow SECURITY
DEFINER function) and does the rest inside the delivery's organization.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Conn, org_transaction, returned_row

_WEBHOOK = "id, url, events, created_at"


async def insert_webhook(conn: Conn, *, org_id: UUID, webhook_id: UUID, url: str,
                         events: list[str], key_id: str, nonce: bytes,
                         ciphertext: bytes) -> asyncpg.Record:
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            "INSERT INTO webhooks (id, org_id, url, events, secret_key_id, secret_nonce,"
            " secret_ciphertext) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            f" RETURNING {_WEBHOOK}", webhook_id, org_id, url, events, key_id, nonce, ciphertext))


async def list_webhooks(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(f"SELECT {_WEBHOOK} FROM webhooks WHERE org_id = $1"
                             " ORDER BY created_at DESC, id", org_id)


async def get_webhook(conn: Conn, *, org_id: UUID, webhook_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(f"SELECT {_WEBHOOK} FROM webhooks WHERE org_id = $1 AND id = $2",
                                org_id, webhook_id)


async def delete_webhook(conn: Conn, *, org_id: UUID, webhook_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute("DELETE FROM webhooks WHERE org_id = $1 AND id = $2",
                                 org_id, webhook_id)
    return status.endswith(" 1")


async def list_deliveries(conn: Conn, *, org_id: UUID, webhook_id: UUID,
                          limit: int = 100) -> list[dict[str, Any]]:
    """The webhook's latest deliveries, newest first, each with its attempts in order."""
    async with org_transaction(conn, org_id) as c:
        rows = await c.fetch(
            "SELECT d.id, d.event_type, d.session_id, d.status, d.attempts, d.event_at,"
            "       d.next_attempt_at, d.delivered_at, d.payload,"
            "       COALESCE((SELECT jsonb_agg(jsonb_build_object("
            "            'attempt', a.attempt, 'started_at', a.started_at,"
            "            'status_code', a.status_code, 'latency_ms', a.latency_ms,"
            "            'error', a.error) ORDER BY a.attempt)"
            "         FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]') AS attempt_log"
            " FROM webhook_deliveries d WHERE d.org_id = $1 AND d.webhook_id = $2"
            " ORDER BY d.event_at DESC, d.id LIMIT $3", org_id, webhook_id, limit)
    return [dict(r) for r in rows]


async def redeliver(conn: Conn, *, org_id: UUID, webhook_id: UUID, delivery_id: UUID) -> bool:
    """Queue a delivery again now, with a fresh retry window (whatever its status)."""
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = clock_timestamp(),"
            " retry_from = clock_timestamp()"
            " WHERE org_id = $1 AND webhook_id = $2 AND id = $3", org_id, webhook_id, delivery_id)
        if status.endswith(" 1"):
            await c.execute("SELECT pg_notify('aico_webhooks', '')")
    return status.endswith(" 1")


# --- the worker ------------------------------------------------------------------------------

async def claim_due_deliveries(conn: Conn, *, limit: int,
                               lease_s: float) -> list[asyncpg.Record]:
    """Up to `limit` due deliveries of any organization, leased for `lease_s`: (id, org_id)."""
    return await conn.fetch("SELECT id, org_id FROM aico_claim_webhook_deliveries($1, $2)",
                            limit, lease_s)


async def get_delivery_for_sending(conn: Conn, *, org_id: UUID,
                                   delivery_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "SELECT d.id, d.webhook_id, d.payload, d.attempts, d.status, d.retry_from,"
            "       w.url, w.secret_key_id, w.secret_nonce, w.secret_ciphertext,"
            # The organization's egress allow-list, read with it: one round trip per send.
            "       COALESCE((SELECT e.hosts FROM egress_allowlists e WHERE e.org_id = $1),"
            "                '{}') AS egress_allowlist"
            " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
            " WHERE d.org_id = $1 AND d.id = $2", org_id, delivery_id)


async def record_attempt(conn: Conn, *, org_id: UUID, delivery_id: UUID, started_at: datetime,
                         status_code: int | None, latency_ms: float, error: str | None,
                         delivered: bool, retry_in_s: float | None) -> str:
    """Log one attempt and move the delivery on: delivered, pending again in `retry_in_s`,
    or failed (`retry_in_s` None). Returns the new status."""
    new_status = "delivered" if delivered else ("pending" if retry_in_s is not None else "failed")
    async with org_transaction(conn, org_id) as c:
        attempt = await c.fetchval(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $3,"
            " delivered_at = CASE WHEN $3 = 'delivered' THEN clock_timestamp() END,"
            " next_attempt_at = clock_timestamp() + make_interval(secs => $4)"
            " WHERE org_id = $1 AND id = $2 RETURNING attempts",
            org_id, delivery_id, new_status, retry_in_s or 0.0)
        if attempt is not None:
            await c.execute(
                "INSERT INTO webhook_attempts (org_id, delivery_id, attempt, started_at,"
                " status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                org_id, delivery_id, attempt, started_at, status_code, latency_ms, error)
    return new_status


async def prune_integrations(conn: Conn, *, idempotency_ttl_s: float,
                             keep_deliveries_s: float) -> int:
    """Every organization's expired idempotency keys and old finished deliveries (migration
    0083's narrow function); how many rows went."""
    return int(await conn.fetchval("SELECT aico_prune_integrations($1, $2)",
                                   float(idempotency_ttl_s), float(keep_deliveries_s)))


# --- key rotation (the CLI, as the tables' owner) ----------------------------------------------

async def list_org_ids_with_webhook_secrets_not_under(conn: Conn, *, key_id: str) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT DISTINCT org_id FROM webhooks WHERE secret_key_id <> $1 ORDER BY org_id", key_id)
    return [r["org_id"] for r in rows]


async def fetch_webhook_secrets_not_under(conn: Conn, *, org_id: UUID,
                                          key_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id AS webhook_id, secret_key_id, secret_nonce, secret_ciphertext FROM webhooks"
        " WHERE org_id = $1 AND secret_key_id <> $2 ORDER BY id", org_id, key_id)


async def update_webhook_secret(conn: Conn, *, org_id: UUID, webhook_id: UUID, old_nonce: bytes,
                                key_id: str, nonce: bytes, ciphertext: bytes) -> bool:
    status = await conn.execute(
        "UPDATE webhooks SET secret_key_id = $3, secret_nonce = $4, secret_ciphertext = $5"
        " WHERE org_id = $1 AND id = $2 AND secret_nonce = $6",
        org_id, webhook_id, key_id, nonce, ciphertext, old_nonce)
    return status.endswith(" 1")
