"""The `egress_allowlists` table: per organization, the private hosts and networks that
outbound requests (http nodes, provider URLs) may reach. Entries are validated by
`aico.egress.normalize_allowlist` before they are stored."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import org_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def get_egress_allowlist(conn: Conn, *, org_id: UUID) -> list[str]:
    async with org_transaction(conn, org_id) as c:
        hosts = await c.fetchval("SELECT hosts FROM egress_allowlists WHERE org_id = $1", org_id)
    return list(hosts or [])


async def replace_egress_allowlist(conn: Conn, *, org_id: UUID, hosts: list[str]) -> list[str]:
    async with org_transaction(conn, org_id) as c:
        stored = await c.fetchval(
            "INSERT INTO egress_allowlists (org_id, hosts) VALUES ($1, $2)"
            " ON CONFLICT (org_id) DO UPDATE SET hosts = EXCLUDED.hosts, updated_at = now()"
            " RETURNING hosts",
            org_id, hosts)
    return list(stored)
