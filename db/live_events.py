"""Live events too big for a PostgreSQL NOTIFY payload (8,000 bytes): the publisher stores the
event here and notifies only its id; the observers' listener reads it back. Rows are pruned
after a while by the session sweeper."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def insert_live_events_row(conn: Conn, *, org_id: UUID, session_id: UUID,
                                 payload: dict[str, Any]) -> int:
    return int(await conn.fetchval(
        "INSERT INTO live_events (org_id, session_id, payload) VALUES ($1, $2, $3) RETURNING id",
        org_id, session_id, payload))


async def get_live_events_row(conn: Conn, *, event_id: int) -> dict[str, Any] | None:
    payload = await conn.fetchval("SELECT payload FROM live_events WHERE id = $1", event_id)
    return payload if isinstance(payload, dict) else None


async def delete_live_events_older_than(conn: Conn, *, seconds: float) -> int:
    status = await conn.execute(
        "DELETE FROM live_events WHERE created_at < now() - make_interval(secs => $1)",
        float(seconds))
    return int(status.split()[-1])
