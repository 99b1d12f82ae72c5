"""Transcript turns: what the caller and the agent said, one row per turn, numbered like the
session event that produced it. Written by `db.sessions.commit_session_step`."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def count_transcript_turns(conn: Conn, *, session_id: UUID) -> dict[str, int]:
    async with session_transaction(conn, session_id) as c:
        rows = await c.fetch(
            "SELECT role, count(*) AS n FROM transcript_turns WHERE session_id = $1 GROUP BY role",
            session_id,
        )
    return {r["role"]: r["n"] for r in rows}
