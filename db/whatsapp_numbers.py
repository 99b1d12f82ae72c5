"""The `whatsapp_numbers` table: an organization's WhatsApp Business numbers, each answered by a
flow. The verification token is kept as its SHA-256 only; the app secret and access token are
named organization secrets, never values."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

import asyncpg

from db import channel_numbers
from db.pool import Conn, lookup_transaction, org_transaction

COLUMNS = ("id, org_id, phone_number_id, display_number, flow_id, app_secret_secret,"
           " access_token_secret, voice_replies, last_error, created_at, updated_at")
# What PATCH may change (the column for each field).
UPDATABLE = ("display_number", "flow_id", "verify_token_hash", "app_secret_secret",
             "access_token_secret", "voice_replies")


def hash_verify_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def insert_whatsapp_number(conn: Conn, *, org_id: UUID, phone_number_id: str,
                                 display_number: str, flow_id: UUID, verify_token: str,
                                 app_secret_secret: str,
                                 access_token_secret: str,
                                 voice_replies: bool = False) -> asyncpg.Record | None:
    """The new row, or None when the phone number id is configured already (anywhere)."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "INSERT INTO whatsapp_numbers (org_id, phone_number_id, display_number, flow_id,"
            " verify_token_hash, app_secret_secret, access_token_secret, voice_replies)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" ON CONFLICT (phone_number_id) DO NOTHING RETURNING {COLUMNS}",
            org_id, phone_number_id, display_number, flow_id, hash_verify_token(verify_token),
            app_secret_secret, access_token_secret, voice_replies)


async def list_whatsapp_numbers(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    return await channel_numbers.list_numbers(conn, "whatsapp_numbers", COLUMNS, org_id=org_id)


async def get_whatsapp_number(conn: Conn, *, org_id: UUID,
                              number_id: UUID) -> asyncpg.Record | None:
    return await channel_numbers.get_number(conn, "whatsapp_numbers", COLUMNS, org_id=org_id,
                                            number_id=number_id)


async def update_whatsapp_number(conn: Conn, *, org_id: UUID, number_id: UUID,
                                 changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply `changes` (keys from UPDATABLE); a new access token clears the recorded error."""
    return await channel_numbers.update_number(
        conn, "whatsapp_numbers", COLUMNS, org_id=org_id, number_id=number_id, changes=changes,
        updatable=UPDATABLE,
        also_set=["last_error = NULL"] if "access_token_secret" in changes else [])


async def delete_whatsapp_number(conn: Conn, *, org_id: UUID, number_id: UUID) -> bool:
    return await channel_numbers.delete_number(conn, "whatsapp_numbers", org_id=org_id,
                                               number_id=number_id)


async def find_whatsapp_numbers(conn: Conn,
                                phone_number_ids: list[str]) -> list[asyncpg.Record]:
    """The numbers configured for these Meta ids, whichever organization holds each (a webhook
    carries no organization: the id routes it)."""
    found = []
    for phone_number_id in sorted(set(phone_number_ids)):
        async with lookup_transaction(conn, "aico_whatsapp_number_org", phone_number_id) as c:
            row = await c.fetchrow(
                f"SELECT {COLUMNS} FROM whatsapp_numbers WHERE phone_number_id = $1",
                phone_number_id)
        if row is not None:
            found.append(row)
    return found


async def whatsapp_verify_token_known(conn: Conn, token: str) -> bool:
    return bool(await conn.fetchval("SELECT aico_whatsapp_verify_token_known($1)",
                                    hash_verify_token(token)))


async def record_whatsapp_number_error(conn: Conn, *, org_id: UUID, number_id: UUID,
                                       error: dict[str, Any]) -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "UPDATE whatsapp_numbers SET last_error = $3::jsonb, updated_at = now()"
            " WHERE org_id = $1 AND id = $2",
            org_id, number_id, error)


def number_view(row: asyncpg.Record) -> dict[str, Any]:
    """A number as the API shows it (never the verification token or its hash)."""
    return {"id": row["id"], "phone_number_id": row["phone_number_id"],
            "display_number": row["display_number"], "flow_id": row["flow_id"],
            "app_secret_secret": row["app_secret_secret"],
            "access_token_secret": row["access_token_secret"],
            "voice_replies": row["voice_replies"], "last_error": row["last_error"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}

