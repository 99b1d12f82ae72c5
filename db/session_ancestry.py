"""The `sessions` parent chain: how deep a subflow session is nested (flows' depth bound)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import Connection, session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def count_session_ancestors(conn: Conn, *, session_id: UUID, limit: int) -> int | None:
    """How many sessions sit above `session_id` (0 for a top-level one), counting at most
    `limit + 1`; None when the session itself is not visible (so a caller can fail closed)."""
    async with session_transaction(conn, session_id) as c:
        return await _count_session_ancestors(c, session_id=session_id, limit=limit)


async def _count_session_ancestors(conn: Connection, *, session_id: UUID,
                                   limit: int) -> int | None:
    return await conn.fetchval(
        """
        WITH RECURSIVE chain(id, parent, depth) AS (
            SELECT id, parent_session_id, 0 FROM sessions WHERE id = $1
            UNION ALL
            SELECT s.id, s.parent_session_id, c.depth + 1
            FROM sessions s JOIN chain c ON s.id = c.parent
            WHERE c.depth <= $2
        )
        SELECT max(depth) FROM chain
        """,
        session_id, limit)
