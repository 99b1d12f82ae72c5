"""Sessions closed as `failed` outside the executor: the call's host (its actor or its API
replica) is gone, so no step will ever record how the session ended."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import Connection, session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def fail_sessions_row(conn: Conn, *, session_id: UUID, reason: str) -> bool:
    """Close a live session as `failed` outside the executor (its call's host is gone): the
    status, `state.ended_reason` and a `session.failed` event with the reason, in one statement
    guarded like a step (the version moves on, so a step in flight loses its race). False when
    the session had already ended or failed."""
    async with session_transaction(conn, session_id) as c:
        return await _fail_sessions_row(c, session_id=session_id, reason=reason)


async def _fail_sessions_row(conn: Connection, *, session_id: UUID, reason: str) -> bool:
    failed = await conn.fetchval(
        """
        WITH s AS (
            UPDATE sessions SET status = 'failed',
                   state = state || jsonb_build_object('ended_reason', $2::text),
                   version = version + 1, event_seq = event_seq + 1, updated_at = now(),
                   ended_at = COALESCE(ended_at, now())
             WHERE id = $1 AND status IN ('active', 'waiting')
            RETURNING org_id, event_seq
        ), ev AS (
            INSERT INTO session_events (org_id, session_id, seq, event_id, type, direction,
                                        payload)
            SELECT s.org_id, $1, s.event_seq, 'session.failed', 'session.failed', 'in',
                   jsonb_build_object('reason', $2::text)
              FROM s
            RETURNING 1
        )
        SELECT count(*) FROM s
        """,
        session_id, reason)
    return failed == 1
