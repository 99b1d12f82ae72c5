"""Flows (an editable draft with a revision counter) and their immutable published versions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Conn, lookup_transaction, org_transaction, returned_row

_FLOW_COLUMNS = (
    "id, org_id, name, description, draft AS document, draft_revision, latest_version,"
    " created_at, updated_at"
)


async def insert_flow(
    conn: Conn, *, org_id: UUID, name: str, description: str, document: dict[str, Any]
) -> asyncpg.Record:
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            f"INSERT INTO flows (org_id, name, description, draft) VALUES ($1, $2, $3, $4)"
            f" RETURNING {_FLOW_COLUMNS}",
            org_id, name, description, document,
        ))


async def list_flows(conn: Conn, *, org_id: UUID, limit: int = 200) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            f"SELECT {_FLOW_COLUMNS} FROM flows WHERE org_id = $1 AND deleted_at IS NULL"
            " ORDER BY created_at DESC, id LIMIT $2",
            org_id, limit,
        )


async def get_flow(conn: Conn, *, org_id: UUID, flow_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            f"SELECT {_FLOW_COLUMNS} FROM flows"
            " WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
            org_id, flow_id,
        )


async def update_flow_draft(
    conn: Conn,
    *,
    org_id: UUID,
    flow_id: UUID,
    expected_revision: int,
    name: str,
    description: str,
    document: dict[str, Any],
) -> asyncpg.Record | None:
    """Compare-and-set on `draft_revision`: None when the flow is gone or the revision is stale."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            f"UPDATE flows SET name = $4, description = $5, draft = $6,"
            f" draft_revision = draft_revision + 1, updated_at = now()"
            f" WHERE org_id = $1 AND id = $2 AND draft_revision = $3 AND deleted_at IS NULL"
            f" RETURNING {_FLOW_COLUMNS}",
            org_id, flow_id, expected_revision, name, description, document,
        )


async def soft_delete_flow(conn: Conn, *, org_id: UUID, flow_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(
            "UPDATE flows SET deleted_at = now() WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
            org_id, flow_id,
        )
    return status.endswith(" 1")


async def insert_flow_version(
    conn: Conn, *, org_id: UUID, flow_id: UUID, document: dict[str, Any]
) -> asyncpg.Record | None:
    """Publish `document` as the flow's next version, atomically; None when the flow is gone."""
    async with org_transaction(conn, org_id) as c:
        version = await c.fetchval(
            "UPDATE flows SET latest_version = latest_version + 1, updated_at = now()"
            " WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING latest_version",
            org_id, flow_id,
        )
        if version is None:
            return None
        return await c.fetchrow(
            "INSERT INTO flow_versions (org_id, flow_id, version, document)"
            " VALUES ($1, $2, $3, $4) RETURNING id, flow_id, version, document, created_at",
            org_id, flow_id, version, document,
        )


async def list_flow_versions(conn: Conn, *, org_id: UUID, flow_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT id, flow_id, version, document, created_at FROM flow_versions"
            " WHERE org_id = $1 AND flow_id = $2 ORDER BY version DESC",
            org_id, flow_id,
        )


async def get_flow_version(
    conn: Conn, *, org_id: UUID, flow_id: UUID, version: int | None = None
) -> asyncpg.Record | None:
    """The given version, or the latest published one when `version` is None."""
    async with org_transaction(conn, org_id) as c:
        if version is None:
            return await c.fetchrow(
                "SELECT id, flow_id, version, document, created_at FROM flow_versions"
                " WHERE org_id = $1 AND flow_id = $2 ORDER BY version DESC LIMIT 1",
                org_id, flow_id,
            )
        return await c.fetchrow(
            "SELECT id, flow_id, version, document, created_at FROM flow_versions"
            " WHERE org_id = $1 AND flow_id = $2 AND version = $3",
            org_id, flow_id, version,
        )


async def get_flow_version_by_id(conn: Conn, *, version_id: UUID) -> asyncpg.Record | None:
    async with lookup_transaction(conn, "aico_flow_version_org", version_id) as c:
        return await c.fetchrow(
            "SELECT id, org_id, flow_id, version, document, created_at FROM flow_versions"
            " WHERE id = $1",
            version_id,
        )
