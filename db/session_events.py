"""Session events: the append-only log of every event a session consumed ('in') or produced
('out'). Rows are written only by `db.sessions.commit_session_step`, in the step's statement."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def get_session_event(conn: Conn, *, session_id: UUID, event_id: str) -> asyncpg.Record | None:
    async with session_transaction(conn, session_id) as c:
        return await c.fetchrow(
            "SELECT seq, event_id, type, direction, payload, result, created_at FROM session_events"
            " WHERE session_id = $1 AND event_id = $2",
            session_id, event_id,
        )


async def list_session_events_for_session(
    conn: Conn, *, session_id: UUID, limit: int = 10_000
) -> list[asyncpg.Record]:
    """The whole log of one session, in order (tests, exports; never the executor)."""
    async with session_transaction(conn, session_id) as c:
        return await c.fetch(
            "SELECT seq, event_id, type, direction, payload, result FROM session_events"
            " WHERE session_id = $1 ORDER BY seq LIMIT $2",
            session_id, limit,
        )
