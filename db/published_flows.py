"""The latest published version of every flow, across organizations, for start-up work run with
the owner's connection (`aico up` warms every flow's greeting): the owner reads every row through
its row-level-security policy; the application role, with no organization set, reads none."""

from __future__ import annotations

import asyncpg

from db.pool import Conn


async def list_flow_versions_latest_everywhere(conn: Conn, *,
                                               limit: int = 1000) -> list[asyncpg.Record]:
    """(org_id, flow_id, version, document) of each live flow's newest version, newest flows
    first, at most `limit`."""
    return await conn.fetch(
        "SELECT * FROM (SELECT DISTINCT ON (v.flow_id) v.org_id, v.flow_id, v.version,"
        "  v.document, v.created_at FROM flow_versions v"
        "  JOIN flows f ON f.id = v.flow_id AND f.org_id = v.org_id AND f.deleted_at IS NULL"
        "  ORDER BY v.flow_id, v.version DESC) latest"
        " ORDER BY created_at DESC LIMIT $1",
        limit,
    )
