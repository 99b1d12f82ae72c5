"""Live events too big for a PostgreSQL NOTIFY payload (8,000 bytes): the publisher stores the
event here and notifies only its id; the observers' listener reads it back. Rows are pruned
after a while by the session sweeper."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import org_transaction, session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def insert_live_events_row(conn: Conn, *, org_id: UUID, session_id: UUID,
                                 payload: dict[str, Any]) -> int:
    async with org_transaction(conn, org_id) as c:
        return int(await c.fetchval(
            "INSERT INTO live_events (org_id, session_id, payload) VALUES ($1, $2, $3) RETURNING id",
            org_id, session_id, payload))


async def get_live_events_row(conn: Conn, *, event_id: int,
                              session_id: UUID) -> dict[str, Any] | None:
    # By the session too: ids are a sequence, so the id alone must not be enough to read a row.
    async with session_transaction(conn, session_id) as c:
        payload = await c.fetchval(
            "SELECT payload FROM live_events WHERE id = $1 AND session_id = $2",
            event_id, session_id)
    return payload if isinstance(payload, dict) else None


async def delete_live_events_older_than(conn: Conn, *, seconds: float) -> int:
    # Every organization's rows: through the owner's narrow function (migration 0051).
    return int(await conn.fetchval("SELECT aico_delete_live_events_older_than($1)",
                                   float(seconds)))
