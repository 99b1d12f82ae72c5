"""Organizations and their members."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Conn, lookup_transaction, org_transaction, returned_row


async def insert_organization(
    conn: Conn,
    *,
    slug: str,
    name: str,
    external_id: str | None = None,
    settings: dict[str, Any] | None = None,
) -> asyncpg.Record:
    # The id is chosen here so that the new row is inside the organization scope it is written in.
    org_id = uuid.uuid4()
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            "INSERT INTO organizations (id, slug, name, external_id, settings)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING *",
            org_id, slug, name, external_id, settings or {},
        ))


async def get_organization_by_slug(
    conn: Conn, slug: str
) -> asyncpg.Record | None:
    async with lookup_transaction(conn, "aico_org_by_slug", slug) as c:
        return await c.fetchrow("SELECT * FROM organizations WHERE slug = $1", slug)


async def get_organization_by_external_id(
    conn: Conn, external_id: str
) -> asyncpg.Record | None:
    async with lookup_transaction(conn, "aico_org_by_external_id", external_id) as c:
        return await c.fetchrow("SELECT * FROM organizations WHERE external_id = $1",
                                external_id)


async def upsert_member(
    conn: Conn, *, org_id: UUID, subject: str, role: str = "member"
) -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "INSERT INTO members (org_id, subject, role) VALUES ($1, $2, $3)"
            " ON CONFLICT (org_id, subject) DO NOTHING",
            org_id, subject, role,
        )


async def get_member_role(
    conn: Conn, *, org_id: UUID, subject: str
) -> str | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchval(
            "SELECT role FROM members WHERE org_id = $1 AND subject = $2", org_id, subject
        )
