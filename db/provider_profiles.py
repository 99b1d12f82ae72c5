"""The `provider_profiles` table: an organization's named provider profiles, per capability
(what a flow may pick by name; the admin owns every field that can carry a secret or reach
the network)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import org_transaction

Conn = asyncpg.Connection | asyncpg.Pool

_COLUMNS = "capability, name, config, allowed_models, max_tokens_cap, internal, is_default"


async def list_provider_profiles(conn: Conn, *, org_id: UUID) -> list[dict[str, Any]]:
    async with org_transaction(conn, org_id) as c:
        rows = await c.fetch(
            f"SELECT {_COLUMNS} FROM provider_profiles WHERE org_id = $1 ORDER BY capability, name",
            org_id)
    return [dict(r) for r in rows]


async def replace_provider_profiles(conn: Conn, *, org_id: UUID,
                                    profiles: list[dict[str, Any]]) -> None:
    """Make the organization's profiles exactly `profiles` (those not named are removed)."""
    async with org_transaction(conn, org_id) as c:
        await c.execute("DELETE FROM provider_profiles WHERE org_id = $1", org_id)
        await c.executemany(
            f"INSERT INTO provider_profiles (org_id, {_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(org_id, p["capability"], p["name"], p["config"], p["allowed_models"],
              p["max_tokens_cap"], p["internal"], p["is_default"]) for p in profiles])
