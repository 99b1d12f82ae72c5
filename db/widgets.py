"""Web widgets (migrations 0084, 0085): public keys, allowed origins, and visitors' sessions
(chat and voice)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.pool import Conn, lookup_transaction, org_transaction, returned_row

_WIDGET = "id, public_key, flow_id, allowed_origins, voice, created_at"


async def insert_widget(conn: Conn, *, org_id: UUID, widget_id: UUID, public_key: str,
                        flow_id: UUID, allowed_origins: list[str], voice: bool,
                        identity_key_id: str, identity_nonce: bytes,
                        identity_ciphertext: bytes) -> asyncpg.Record:
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            "INSERT INTO widgets (id, org_id, public_key, flow_id, allowed_origins, voice,"
            " identity_key_id, identity_nonce, identity_ciphertext)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_WIDGET}",
            widget_id, org_id, public_key, flow_id, allowed_origins, voice, identity_key_id,
            identity_nonce, identity_ciphertext))


async def list_widgets(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(f"SELECT {_WIDGET} FROM widgets WHERE org_id = $1"
                             " ORDER BY created_at DESC, id", org_id)


async def delete_widget(conn: Conn, *, org_id: UUID, widget_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute("DELETE FROM widgets WHERE org_id = $1 AND id = $2",
                                 org_id, widget_id)
    return status.endswith(" 1")


async def get_widget_by_key(conn: Conn, public_key: str) -> asyncpg.Record | None:
    async with lookup_transaction(conn, "aico_widget_org", public_key) as c:
        return await c.fetchrow(
            f"SELECT org_id, {_WIDGET}, identity_key_id, identity_nonce, identity_ciphertext"
            " FROM widgets WHERE public_key = $1", public_key)


async def insert_widget_session(conn: Conn, *, org_id: UUID, widget_id: UUID, session_id: UUID,
                                visitor_token_hash: str) -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "INSERT INTO widget_sessions (session_id, org_id, widget_id, visitor_token_hash)"
            " VALUES ($1, $2, $3, $4)", session_id, org_id, widget_id, visitor_token_hash)


async def get_widget_session(conn: Conn, *, org_id: UUID, widget_id: UUID,
                             session_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "SELECT visitor_token_hash FROM widget_sessions"
            " WHERE org_id = $1 AND widget_id = $2 AND session_id = $3",
            org_id, widget_id, session_id)


async def get_widget_session_origins(conn: Conn, *, org_id: UUID,
                                     session_id: UUID) -> list[str] | None:
    """The allowed origins of the widget that started a session; None for any other session."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchval(
            "SELECT w.allowed_origins FROM widget_sessions ws JOIN widgets w ON w.id = ws.widget_id"
            " WHERE ws.org_id = $1 AND ws.session_id = $2", org_id, session_id)


# --- key rotation (the CLI, as the tables' owner) ----------------------------------------------

async def list_org_ids_with_widget_secrets_not_under(conn: Conn, *, key_id: str) -> list[UUID]:
    rows = await conn.fetch("SELECT DISTINCT org_id FROM widgets WHERE identity_key_id <> $1"
                            " ORDER BY org_id", key_id)
    return [r["org_id"] for r in rows]


async def fetch_widget_secrets_not_under(conn: Conn, *, org_id: UUID,
                                         key_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, identity_key_id, identity_nonce, identity_ciphertext FROM widgets"
        " WHERE org_id = $1 AND identity_key_id <> $2 ORDER BY id", org_id, key_id)


async def update_widget_secret(conn: Conn, *, org_id: UUID, widget_id: UUID, old_nonce: bytes,
                               key_id: str, nonce: bytes, ciphertext: bytes) -> bool:
    status = await conn.execute(
        "UPDATE widgets SET identity_key_id = $3, identity_nonce = $4, identity_ciphertext = $5"
        " WHERE org_id = $1 AND id = $2 AND identity_nonce = $6",
        org_id, widget_id, key_id, nonce, ciphertext, old_nonce)
    return status.endswith(" 1")
