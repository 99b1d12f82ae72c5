"""Arrange session rows directly, for read-side tests that must not depend on the executor."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def insert_session_row(
    pool: asyncpg.Pool, *, org_id: UUID, flow_id: str | UUID, channel: str = "chat",
    status: str = "active", turns: list[tuple[str, str]] = (),
) -> UUID:
    version_id = await pool.fetchval(
        "SELECT id FROM flow_versions WHERE org_id = $1 AND flow_id = $2"
        " ORDER BY version DESC LIMIT 1", org_id, UUID(str(flow_id)))
    session_id = await pool.fetchval(
        "INSERT INTO sessions (org_id, flow_id, flow_version_id, channel, status)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        org_id, UUID(str(flow_id)), version_id, channel, status)
    for seq, (role, text) in enumerate(turns, start=1):
        await pool.execute(
            "INSERT INTO transcript_turns (org_id, session_id, seq, role, text)"
            " VALUES ($1, $2, $3, $4, $5)", org_id, session_id, seq, role, text)
    return session_id
