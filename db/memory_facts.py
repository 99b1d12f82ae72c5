"""The `memory_facts` table: a user's current facts (one per type) and the superseded ones,
kept with `superseded_at` for audit."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import Conn, org_transaction


async def record_fact(conn: Conn, *, org_id: UUID, user_id: str, session_id: UUID | None,
                      type: str, value: str) -> bool:
    """Make `value` the user's current fact of `type`; False when it already was."""
    async with org_transaction(conn, org_id) as c:
        current = await c.fetchval(
            "SELECT value FROM memory_facts WHERE org_id = $1 AND user_id = $2 AND type = $3"
            " AND superseded_at IS NULL FOR UPDATE", org_id, user_id, type)
        if current == value:
            return False
        await c.execute(
            "UPDATE memory_facts SET superseded_at = now() WHERE org_id = $1 AND user_id = $2"
            " AND type = $3 AND superseded_at IS NULL", org_id, user_id, type)
        await c.execute(
            "INSERT INTO memory_facts (org_id, user_id, session_id, type, value)"
            " VALUES ($1, $2, $3, $4, $5)", org_id, user_id, session_id, type, value)
    return True


async def current_facts(conn: Conn, *, org_id: UUID, user_id: str) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT type, value, created_at FROM memory_facts WHERE org_id = $1"
            " AND user_id = $2 AND superseded_at IS NULL ORDER BY type", org_id, user_id)


async def list_facts(conn: Conn, *, org_id: UUID, user_id: str) -> list[asyncpg.Record]:
    """Every fact of the user, current and superseded, newest first."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT id, type, value, created_at, superseded_at FROM memory_facts"
            " WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC, id DESC",
            org_id, user_id)


async def delete_user_facts(conn: Conn, *, org_id: UUID, user_id: str) -> int:
    async with org_transaction(conn, org_id) as c:
        done = await c.execute("DELETE FROM memory_facts WHERE org_id = $1 AND user_id = $2",
                               org_id, user_id)
    return int(done.split()[-1])
