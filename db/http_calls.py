"""The `http_calls` table: an http node's call intent, recorded before the request leaves, and
its result once it came back (see flows/http_node.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Connection, session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def claim_http_call(conn: Conn, *, session_id: UUID, call_id: str,
                          stale_after_s: float) -> tuple[bool, Any]:
    """(True, None) when this caller may send the call now: it is new, or an earlier claim
    without a result is older than `stale_after_s` (its worker died). Otherwise (False,
    result) with the stored result, or None while another worker's call is in flight."""
    async with session_transaction(conn, session_id) as c:
        return await _claim_http_call(c, session_id=session_id, call_id=call_id,
                                      stale_after_s=stale_after_s)


async def _claim_http_call(conn: Connection, *, session_id: UUID, call_id: str,
                           stale_after_s: float) -> tuple[bool, Any]:
    row = await conn.fetchrow(
        "INSERT INTO http_calls AS c (session_id, call_id) VALUES ($1, $2)"
        " ON CONFLICT (session_id, call_id) DO UPDATE SET claimed_at = now()"
        "   WHERE c.result IS NULL"
        "     AND c.claimed_at < now() - make_interval(secs => $3)"
        " RETURNING claimed_at",
        session_id, call_id, stale_after_s)
    if row is not None:
        return True, None
    result = await conn.fetchval(
        "SELECT result FROM http_calls WHERE session_id = $1 AND call_id = $2",
        session_id, call_id)
    return False, result


async def complete_http_call(conn: Conn, *, session_id: UUID, call_id: str,
                             result: dict[str, Any]) -> None:
    async with session_transaction(conn, session_id) as c:
        await c.execute(
            "UPDATE http_calls SET result = $3, done_at = now()"
            " WHERE session_id = $1 AND call_id = $2",
            session_id, call_id, result)
