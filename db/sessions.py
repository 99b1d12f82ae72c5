"""Sessions: one row per conversation, its state versioned for optimistic locking."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

SESSION_COLUMNS = (
    "s.id, s.org_id, s.flow_id, s.flow_version_id, fv.version AS flow_version,"
    " s.parent_session_id, s.channel, s.status, s.state, s.variables, s.user_id,"
    " s.user_cluster, s.providers, s.metrics, s.version, s.event_seq, s.created_at,"
    " s.updated_at, s.ended_at"
)


async def get_session(conn: Conn, *, org_id: UUID, session_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SESSION_COLUMNS} FROM sessions s JOIN flow_versions fv ON fv.id = s.flow_version_id"
        " WHERE s.org_id = $1 AND s.id = $2",
        org_id, session_id,
    )


async def list_sessions(
    conn: Conn,
    *,
    org_id: UUID,
    flow_id: UUID | None = None,
    status: str | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, UUID] | None = None,
    limit: int = 50,
) -> list[asyncpg.Record]:
    """Newest first; `before` is the (created_at, id) keyset cursor of the previous page."""
    clauses = ["s.org_id = $1"]
    args: list[Any] = [org_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if flow_id is not None:
        add("s.flow_id = ?", flow_id)
    if status is not None:
        add("s.status = ?", status)
    if channel is not None:
        add("s.channel = ?", channel)
    if since is not None:
        add("s.created_at >= ?", since)
    if until is not None:
        add("s.created_at < ?", until)
    if before is not None:
        args.extend(before)
        clauses.append(f"(s.created_at, s.id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    return await conn.fetch(
        f"SELECT {SESSION_COLUMNS} FROM sessions s JOIN flow_versions fv ON fv.id = s.flow_version_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY s.created_at DESC, s.id DESC LIMIT ${len(args)}",
        *args,
    )


async def list_transcript_turns(
    conn: Conn, *, org_id: UUID, session_id: UUID, limit: int = 1000
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seq, role, text, metrics, created_at FROM transcript_turns"
        " WHERE org_id = $1 AND session_id = $2 ORDER BY seq LIMIT $3",
        org_id, session_id, limit,
    )


async def list_session_events(
    conn: Conn, *, org_id: UUID, session_id: UUID, after_seq: int = 0, limit: int = 500
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seq, event_id, type, direction, payload, created_at FROM session_events"
        " WHERE org_id = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        org_id, session_id, after_seq, limit,
    )
