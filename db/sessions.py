"""Sessions: one row per conversation, its state versioned for optimistic locking."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import org_transaction, session_transaction

Conn = asyncpg.Connection | asyncpg.Pool

SESSION_COLUMNS = (
    "s.id, s.org_id, s.flow_id, s.flow_version_id, fv.version AS flow_version,"
    " s.parent_session_id, s.channel, s.status, s.state, s.variables, s.user_id,"
    " s.user_cluster, s.providers, s.metrics, s.version, s.event_seq, s.created_at,"
    " s.updated_at, s.ended_at"
)


async def get_session(conn: Conn, *, org_id: UUID, session_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
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
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            f"SELECT {SESSION_COLUMNS} FROM sessions s JOIN flow_versions fv ON fv.id = s.flow_version_id"
            f" WHERE {' AND '.join(clauses)} ORDER BY s.created_at DESC, s.id DESC LIMIT ${len(args)}",
            *args,
        )


async def list_transcript_turns(
    conn: Conn, *, org_id: UUID, session_id: UUID, limit: int = 1000
) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT seq, role, text, created_at FROM transcript_turns"
            " WHERE org_id = $1 AND session_id = $2 ORDER BY seq LIMIT $3",
            org_id, session_id, limit,
        )


async def list_session_events(
    conn: Conn, *, org_id: UUID, session_id: UUID, after_seq: int = 0, limit: int = 500
) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT seq, event_id, type, direction, payload, created_at FROM session_events"
            " WHERE org_id = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            org_id, session_id, after_seq, limit,
        )


# --- Writes (the flow engine) -------------------------------------------------------------

async def insert_session(
    conn: Conn,
    *,
    org_id: UUID,
    flow_id: UUID,
    flow_version_id: UUID,
    channel: str,
    variables: dict[str, Any],
    state: dict[str, Any] | None = None,
    session_id: UUID | None = None,
    parent_session_id: UUID | None = None,
    user_id: str | None = None,
    user_cluster: str | None = None,
    providers: dict[str, Any] | None = None,
) -> asyncpg.Record | None:
    """A new session pinned to `flow_version_id`. With `session_id` given the insert is
    idempotent: None when a session with that id already exists."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "INSERT INTO sessions (id, org_id, flow_id, flow_version_id, parent_session_id, channel,"
            " status, state, variables, user_id, user_cluster, providers)"
            " VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5, $6, 'active', $7, $8, $9,"
            " $10, $11) ON CONFLICT (id) DO NOTHING"
            " RETURNING id, org_id, flow_id, flow_version_id, channel, status, version",
            session_id, org_id, flow_id, flow_version_id, parent_session_id, channel,
            state or {}, variables, user_id, user_cluster, providers or {},
        )


async def get_session_for_step(
    conn: Conn, *, session_id: UUID, event_id: str
) -> asyncpg.Record | None:
    """Everything one executor step reads, in one round trip: the session row, the org's
    settings, and the stored result of `event_id` if it was already applied. The SQL is
    `aico_step_session` (migration 0052), which scopes its own statement to the session's
    organization: row-level security without the two extra round trips of a client scope."""
    return await conn.fetchrow("SELECT * FROM aico_step_session($1, $2)", session_id, event_id)


async def commit_session_step(
    conn: Conn,
    *,
    session_id: UUID,
    expected_version: int,
    status: str,
    state: dict[str, Any],
    variables: dict[str, Any],
    events: list[dict[str, Any]],
    turns: list[dict[str, Any]],
) -> int | None:
    """Write one step atomically (a single statement): the new state and variables guarded by
    `sessions.version`, the consumed and produced `events` (`{"event_id", "type", "direction",
    "payload", "result"?}`, numbered from the session's `event_seq`), and transcript `turns`
    (`{"event_index", "role", "text"}`, numbered like the event at that index).
    Returns the session's new version, or None when another step committed first.
    The SQL is `aico_commit_session_step` (migration 0052): one round trip, scoped like
    `get_session_for_step`."""
    numbered = [{**e, "i": i + 1} for i, e in enumerate(events)]
    return await conn.fetchval(
        "SELECT aico_commit_session_step($1, $2, $3, $4, $5, $6, $7, $8)",
        session_id, expected_version, status, state, variables, len(events), numbered, turns,
    )


async def get_session_brief(conn: Conn, *, session_id: UUID) -> asyncpg.Record | None:
    """Status, variables and lineage of a session (no org filter: callers checked it)."""
    async with session_transaction(conn, session_id) as c:
        return await c.fetchrow(
            "SELECT id, org_id, flow_id, flow_version_id, parent_session_id, channel, status,"
            " variables, version, event_seq FROM sessions WHERE id = $1",
            session_id,
        )

