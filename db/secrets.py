"""The `secrets` table: AES-GCM ciphertext per (organization, name). Values are never listed."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import org_transaction, returned_row

Conn = asyncpg.Connection | asyncpg.Pool


async def upsert_secret(conn: Conn, *, org_id: UUID, name: str, key_id: str, nonce: bytes,
                        ciphertext: bytes) -> asyncpg.Record:
    """Returns name, created_at, updated_at and `created` (false when it replaced a value)."""
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            "INSERT INTO secrets (org_id, name, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (org_id, name) DO UPDATE SET key_id = EXCLUDED.key_id,"
            " nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, updated_at = now()"
            " RETURNING name, created_at, updated_at, (xmax = 0) AS created",
            org_id, name, key_id, nonce, ciphertext,
        ))


async def list_secrets(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT name, key_id, created_at, updated_at FROM secrets WHERE org_id = $1"
            " ORDER BY name",
            org_id,
        )


async def list_secret_names(conn: Conn, *, org_id: UUID, names: list[str]) -> set[str]:
    async with org_transaction(conn, org_id) as c:
        rows = await c.fetch(
            "SELECT name FROM secrets WHERE org_id = $1 AND name = ANY($2::text[])", org_id, names)
    return {r["name"] for r in rows}


async def fetch_sealed_secrets(conn: Conn, *, org_id: UUID,
                               names: list[str]) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT name, key_id, nonce, ciphertext FROM secrets"
            " WHERE org_id = $1 AND name = ANY($2::text[])",
            org_id, names,
        )


async def delete_secret(conn: Conn, *, org_id: UUID, name: str) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute("DELETE FROM secrets WHERE org_id = $1 AND name = $2",
                                    org_id, name)
    return status.endswith(" 1")
