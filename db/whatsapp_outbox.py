"""The WhatsApp outbox (`whatsapp_outbox`): each outbound message, written in the same
transaction that marks its inbound message applied, then sent (and retried with backoff on
Graph rate limits) by whichever replica claims it. Meta's statuses update its `status`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Conn, Connection, org_transaction, set_transaction_org


async def insert_outbox_messages(conn: Connection, *, org_id: UUID, number_id: UUID,
                                 session_id: UUID | None, inbox_id: int | None, wa_user: str,
                                 bodies: list[dict[str, Any]]) -> None:
    for part, body in enumerate(bodies):
        await conn.execute(
            "INSERT INTO whatsapp_outbox (org_id, number_id, session_id, inbox_id, part, wa_user,"
            " body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (inbox_id, part) DO NOTHING",
            org_id, number_id, session_id, inbox_id, part, wa_user, body)


async def insert_outbound_message(conn: Conn, *, org_id: UUID, number_id: UUID, wa_user: str,
                                  body: dict[str, Any]) -> int:
    """A message an integration sends (a template, or text inside the window): no inbox row."""
    async with org_transaction(conn, org_id) as c:
        return int(await c.fetchval(
            "INSERT INTO whatsapp_outbox (org_id, number_id, part, wa_user, body)"
            " VALUES ($1, $2, 0, $3, $4) RETURNING id", org_id, number_id, wa_user, body))


async def last_inbound_at(conn: Conn, *, org_id: UUID, number_id: UUID,
                          wa_user: str) -> datetime | None:
    """When the user last wrote to this number (Meta's timestamp): the 24-hour window's start."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchval(
            "SELECT max(sent_at) FROM whatsapp_inbox WHERE org_id = $1 AND number_id = $2"
            " AND wa_user = $3", org_id, number_id, wa_user)


async def claim_outbox_message(conn: Connection) -> asyncpg.Record | None:
    """Inside the caller's transaction: lock the next due outbound message (a user's messages
    leave in order) with its number, acting for its organization until the commit."""
    claimed = await conn.fetchrow("SELECT id, org_id FROM aico_claim_whatsapp_outbox()")
    if claimed is None:
        return None
    await set_transaction_org(conn, claimed["org_id"])
    return await conn.fetchrow(
        "SELECT o.*, n.phone_number_id, n.access_token_secret FROM whatsapp_outbox o"
        " JOIN whatsapp_numbers n ON n.id = o.number_id WHERE o.id = $1", claimed["id"])


async def mark_outbox_sent(conn: Connection, *, outbox_id: int, wamid: str) -> None:
    await conn.execute(
        "UPDATE whatsapp_outbox SET status = 'sent', wamid = $2, sent_at = now(),"
        " attempts = attempts + 1 WHERE id = $1", outbox_id, wamid)


async def mark_outbox_retry(conn: Connection, *, outbox_id: int, delay_s: float,
                            error_code: int, error_message: str) -> None:
    await conn.execute(
        "UPDATE whatsapp_outbox SET attempts = attempts + 1, error_code = $3, error_message = $4,"
        " next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1",
        outbox_id, delay_s, error_code, error_message)


async def mark_outbox_failed(conn: Connection, *, outbox_id: int, error_code: int | None,
                             error_message: str) -> None:
    await conn.execute(
        "UPDATE whatsapp_outbox SET status = 'failed', attempts = attempts + 1, error_code = $2,"
        " error_message = $3 WHERE id = $1", outbox_id, error_code, error_message)


async def mark_reengagement_required(conn: Connection, *, session_id: UUID) -> None:
    await conn.execute(
        "UPDATE whatsapp_conversations SET reengagement_required = true"
        " WHERE session_id = $1 AND closed_at IS NULL", session_id)


async def list_outbox(conn: Conn, *, org_id: UUID,
                      session_id: UUID | None = None) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT id, number_id, session_id, wa_user, body, status, wamid, error_code,"
            " error_message, attempts, created_at, sent_at FROM whatsapp_outbox"
            " WHERE org_id = $1 AND ($2::uuid IS NULL OR session_id = $2) ORDER BY id",
            org_id, session_id)
