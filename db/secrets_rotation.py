"""The `secrets` table during a key rotation: rows sealed under another key than the current
one, re-sealed in place only when nobody changed them meanwhile.

The caller reads and writes each organization's rows inside a transaction scoped to it
(`db.pool.org_transaction`: what row-level security checks); listing the organizations with
stale rows spans them all, which the tables' owner (the CLI) may do.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of its own, or one lent by a pool.
Conn = asyncpg.Connection | PoolConnectionProxy


async def list_org_ids_with_secrets_not_under(conn: asyncpg.Connection | asyncpg.Pool, *,
                                              key_id: str) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT DISTINCT org_id FROM secrets WHERE key_id <> $1 ORDER BY org_id", key_id)
    return [r["org_id"] for r in rows]


async def fetch_sealed_secrets_not_under(conn: Conn, *, org_id: UUID,
                                         key_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT name, key_id, nonce, ciphertext FROM secrets"
        " WHERE org_id = $1 AND key_id <> $2 ORDER BY name",
        org_id, key_id,
    )


async def update_sealed_secret_if_unchanged(
    conn: Conn, *, org_id: UUID, name: str, old_key_id: str, old_nonce: bytes,
    key_id: str, nonce: bytes, ciphertext: bytes,
) -> bool:
    """Re-seal one row; false when it was rewritten or deleted since it was read. `updated_at`
    stays: the value did not change."""
    status = await conn.execute(
        "UPDATE secrets SET key_id = $5, nonce = $6, ciphertext = $7"
        " WHERE org_id = $1 AND name = $2 AND key_id = $3 AND nonce = $4",
        org_id, name, old_key_id, old_nonce, key_id, nonce, ciphertext,
    )
    return status.endswith(" 1")
