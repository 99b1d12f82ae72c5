"""The WhatsApp inbox (`whatsapp_inbox`: verified inbound messages, stored before the webhook is
acknowledged, applied once per wamid), delivery statuses (`whatsapp_statuses`, reflected on
`whatsapp_outbox`) and conversations (`whatsapp_conversations`: one open session per
organization, WhatsApp user and flow)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Conn, Connection, org_transaction, returned_row, set_transaction_org


@dataclass(frozen=True)
class InboundMessage:
    number_id: UUID
    wamid: str
    wa_user: str
    kind: str
    sent_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class InboundStatus:
    number_id: UUID
    wamid: str
    status: str
    error_code: int | None
    reported_at: datetime


# A later status never goes back to an earlier one (Meta may deliver `read` before `delivered`).
_STATUS_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


async def store_inbound(conn: Conn, *, org_id: UUID, messages: list[InboundMessage],
                        statuses: list[InboundStatus]) -> int:
    """Store one organization's part of a notification in one transaction; a wamid already
    stored is skipped. Returns how many messages were new."""
    new = 0
    async with org_transaction(conn, org_id) as c:
        for m in messages:
            status = await c.execute(
                "INSERT INTO whatsapp_inbox (org_id, number_id, wamid, wa_user, kind, sent_at,"
                " payload) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (number_id, wamid) DO NOTHING",
                org_id, m.number_id, m.wamid, m.wa_user, m.kind, m.sent_at, m.payload)
            new += status.endswith(" 1")
        for s in statuses:
            await c.execute(
                "INSERT INTO whatsapp_statuses (org_id, number_id, wamid, status, error_code,"
                " reported_at) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (wamid, status) DO NOTHING",
                org_id, s.number_id, s.wamid, s.status, s.error_code, s.reported_at)
            if s.status in _STATUS_RANK:
                await c.execute(
                    "UPDATE whatsapp_outbox SET status = $3,"
                    " error_code = COALESCE($4, error_code)"
                    " WHERE org_id = $1 AND wamid = $2 AND status <> 'failed'"
                    " AND array_position($5::text[], status) < array_position($5::text[], $3)",
                    org_id, s.wamid, s.status, s.error_code, list(_STATUS_RANK))
    return new


async def claim_inbox_message(conn: Connection) -> asyncpg.Record | None:
    """Inside the caller's transaction: lock the next message to apply (the earliest pending one
    of a user with nothing earlier pending) and act for its organization until the commit."""
    claimed = await conn.fetchrow("SELECT id, org_id FROM aico_claim_whatsapp_inbox()")
    if claimed is None:
        return None
    await set_transaction_org(conn, claimed["org_id"])
    return await conn.fetchrow(
        "SELECT i.*, n.flow_id, n.phone_number_id, n.access_token_secret, n.voice_replies"
        " FROM whatsapp_inbox i"
        " JOIN whatsapp_numbers n ON n.id = i.number_id WHERE i.id = $1", claimed["id"])


async def mark_inbox_processed(conn: Connection, *, inbox_id: int, outcome: str) -> None:
    await conn.execute(
        "UPDATE whatsapp_inbox SET processed_at = now(), outcome = $2 WHERE id = $1",
        inbox_id, outcome)


async def mark_inbox_retry(conn: Connection, *, inbox_id: int, delay_s: float,
                           error: str) -> None:
    await conn.execute(
        "UPDATE whatsapp_inbox SET attempts = attempts + 1, outcome = $3,"
        " next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1",
        inbox_id, delay_s, error)


async def open_conversation(conn: Connection, *, org_id: UUID, wa_user: str,
                            flow_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM whatsapp_conversations WHERE org_id = $1 AND wa_user = $2"
        " AND flow_id = $3 AND closed_at IS NULL FOR UPDATE",
        org_id, wa_user, flow_id)


async def close_conversation(conn: Connection, *, conversation_id: UUID) -> None:
    await conn.execute(
        "UPDATE whatsapp_conversations SET closed_at = now() WHERE id = $1", conversation_id)


async def insert_conversation(conn: Connection, *, org_id: UUID, number_id: UUID, wa_user: str,
                              flow_id: UUID, session_id: UUID,
                              last_message_at: datetime) -> asyncpg.Record:
    return returned_row(await conn.fetchrow(
        "INSERT INTO whatsapp_conversations (org_id, number_id, wa_user, flow_id, session_id,"
        " last_message_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        org_id, number_id, wa_user, flow_id, session_id, last_message_at))


async def touch_conversation(conn: Connection, *, conversation_id: UUID,
                             last_message_at: datetime) -> None:
    # A user's message reopens Meta's 24-hour window.
    await conn.execute(
        "UPDATE whatsapp_conversations SET last_message_at = GREATEST(last_message_at, $2),"
        " reengagement_required = false WHERE id = $1",
        conversation_id, last_message_at)


async def list_conversations(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT c.id, c.number_id, c.wa_user, c.flow_id, c.session_id, c.last_message_at,"
            " c.reengagement_required, c.closed_at, c.created_at FROM whatsapp_conversations c"
            " WHERE c.org_id = $1 ORDER BY c.last_message_at DESC LIMIT 200", org_id)
