"""Organizations and their explicit members (subject → role: owner, admin, editor, viewer)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


async def insert_organization(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    slug: str,
    name: str,
    external_id: str | None = None,
    settings: dict[str, Any] | None = None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO organizations (slug, name, external_id, settings)"
        " VALUES ($1, $2, $3, $4) RETURNING *",
        slug, name, external_id, settings or {},
    )


async def get_organization_by_slug(
    conn: asyncpg.Connection | asyncpg.Pool, slug: str
) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM organizations WHERE slug = $1", slug)


async def get_organization(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM organizations WHERE id = $1", org_id)


async def get_organization_by_external_id(
    conn: asyncpg.Connection | asyncpg.Pool, external_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM organizations WHERE external_id = $1", external_id)


async def upsert_member(
    conn: asyncpg.Connection | asyncpg.Pool, *, org_id: UUID, subject: str, role: str
) -> None:
    await conn.execute(
        "INSERT INTO members (org_id, subject, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (org_id, subject) DO UPDATE SET role = EXCLUDED.role",
        org_id, subject, role,
    )


async def get_member_role(
    conn: asyncpg.Connection | asyncpg.Pool, *, org_id: UUID, subject: str
) -> str | None:
    return await conn.fetchval(
        "SELECT role FROM members WHERE org_id = $1 AND subject = $2", org_id, subject
    )
