"""API clients: bearer tokens for integrations and the embedded dev token (hash only), each
with a role (owner, admin, editor, viewer)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from uuid import UUID

import asyncpg

from db.pool import Conn, lookup_transaction, org_transaction


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "aico_" + secrets.token_urlsafe(32)


async def insert_api_client(
    conn: Conn,
    *,
    org_id: UUID,
    name: str,
    token: str,
    role: str = "admin",
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> UUID:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchval(
            "INSERT INTO api_clients (org_id, name, token_hash, role, scopes, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            org_id, name, hash_token(token), role, scopes, expires_at,
        )


async def get_api_client_by_token(
    conn: Conn, token: str
) -> asyncpg.Record | None:
    token_hash = hash_token(token)
    async with lookup_transaction(conn, "aico_api_client_org", token_hash) as c:
        return await c.fetchrow(
            "SELECT id, org_id, name, role, scopes, expires_at FROM api_clients"
            " WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )


async def get_api_client_by_name(
    conn: Conn, *, org_id: UUID, name: str
) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "SELECT id, org_id, name, role FROM api_clients"
            " WHERE org_id = $1 AND name = $2 AND revoked_at IS NULL",
            org_id, name,
        )


async def revoke_api_clients_by_name(
    conn: Conn, *, org_id: UUID, name: str
) -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "UPDATE api_clients SET revoked_at = now()"
            " WHERE org_id = $1 AND name = $2 AND revoked_at IS NULL",
            org_id, name,
        )


async def list_api_clients(conn: Conn, *,
                           org_id: UUID) -> list[asyncpg.Record]:
    """The organization's live API clients, newest first (never their token hashes)."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT id, name, role, scopes, expires_at, created_at FROM api_clients"
            " WHERE org_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id",
            org_id,
        )


async def get_api_client(conn: Conn, *, org_id: UUID,
                         client_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "SELECT id, name, role, scopes, expires_at, created_at FROM api_clients"
            " WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
            org_id, client_id,
        )


async def revoke_api_client(conn: Conn, *, org_id: UUID,
                            client_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(
            "UPDATE api_clients SET revoked_at = now()"
            " WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
            org_id, client_id,
        )
    return status.endswith(" 1")
