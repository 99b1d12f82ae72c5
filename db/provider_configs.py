"""The `provider_configs` table: an organization's provider layer, one config per capability."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import org_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def list_provider_configs(conn: Conn, *, org_id: UUID) -> dict[str, dict[str, Any]]:
    async with org_transaction(conn, org_id) as c:
        rows = await c.fetch(
            "SELECT capability, config FROM provider_configs WHERE org_id = $1", org_id)
    return {r["capability"]: r["config"] for r in rows}


async def replace_provider_configs(conn: asyncpg.Connection, *, org_id: UUID,
                                   configs: dict[str, dict[str, Any]]) -> None:
    """Make the organization's layer exactly `configs` (capabilities not named are removed)."""
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "DELETE FROM provider_configs WHERE org_id = $1 AND NOT (capability = ANY($2))",
            org_id, list(configs))
        for capability, config in configs.items():
            await c.execute(
                "INSERT INTO provider_configs (org_id, capability, config) VALUES ($1, $2, $3)"
                " ON CONFLICT (org_id, capability) DO UPDATE SET config = EXCLUDED.config,"
                " updated_at = now()",
                org_id, capability, config)
