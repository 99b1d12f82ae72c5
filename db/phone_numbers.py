"""The `phone_numbers` and `phone_dialing_policies` tables: an organization's phone numbers (E.164,
each answered by a flow through one carrier) and the destinations it may dial.

A number's `settings` are the carrier's (e.g. `{"account_sid": "AC…", "auth_token_secret":
"TWILIO_AUTH_TOKEN"}`); a key ending in `_secret` names an organization secret, never a value.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db import channel_numbers
from db.pool import Conn, lookup_transaction, org_transaction

COLUMNS = "id, org_id, number, flow_id, provider, settings, created_at, updated_at"
# What PATCH may change.
UPDATABLE = ("flow_id", "settings")


async def insert_phone_number(conn: Conn, *, org_id: UUID, number: str, flow_id: UUID,
                              provider: str,
                              settings: dict[str, Any]) -> asyncpg.Record | None:
    """The new row, or None when the number is configured already (by any organization)."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "INSERT INTO phone_numbers (org_id, number, flow_id, provider, settings)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)"
            f" ON CONFLICT (number) DO NOTHING RETURNING {COLUMNS}",
            org_id, number, flow_id, provider, settings)


async def list_phone_numbers(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    return await channel_numbers.list_numbers(conn, "phone_numbers", COLUMNS, org_id=org_id)


async def get_phone_number(conn: Conn, *, org_id: UUID,
                           number_id: UUID) -> asyncpg.Record | None:
    return await channel_numbers.get_number(conn, "phone_numbers", COLUMNS, org_id=org_id,
                                            number_id=number_id)


async def get_phone_number_by_number(conn: Conn, *, org_id: UUID,
                                     number: str) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            f"SELECT {COLUMNS} FROM phone_numbers WHERE org_id = $1 AND number = $2",
            org_id, number)


async def find_phone_number(conn: Conn, number: str) -> asyncpg.Record | None:
    """The configured number, whichever organization holds it (a carrier's webhook carries no
    organization: the number it reached routes it)."""
    async with lookup_transaction(conn, "aico_phone_number_org", number) as c:
        return await c.fetchrow(f"SELECT {COLUMNS} FROM phone_numbers WHERE number = $1",
                                number)


async def update_phone_number(conn: Conn, *, org_id: UUID, number_id: UUID,
                              changes: dict[str, Any]) -> asyncpg.Record | None:
    return await channel_numbers.update_number(conn, "phone_numbers", COLUMNS, org_id=org_id,
                                               number_id=number_id, changes=changes,
                                               updatable=UPDATABLE)


async def delete_phone_number(conn: Conn, *, org_id: UUID, number_id: UUID) -> bool:
    return await channel_numbers.delete_number(conn, "phone_numbers", org_id=org_id,
                                               number_id=number_id)


# --- the dialing policy ------------------------------------------------------------------------

async def get_phone_dialing_policy(conn: Conn, *, org_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "SELECT org_id, allowed_country_codes, allowed_prefixes, allow_premium, updated_at"
            " FROM phone_dialing_policies WHERE org_id = $1", org_id)


async def upsert_phone_dialing_policy(conn: Conn, *, org_id: UUID,
                                      allowed_country_codes: list[str],
                                      allowed_prefixes: list[str],
                                      allow_premium: bool) -> asyncpg.Record:
    async with org_transaction(conn, org_id) as c:
        row = await c.fetchrow(
            "INSERT INTO phone_dialing_policies AS p (org_id, allowed_country_codes,"
            " allowed_prefixes, allow_premium) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (org_id) DO UPDATE SET allowed_country_codes = $2,"
            " allowed_prefixes = $3, allow_premium = $4, updated_at = now()"
            " RETURNING org_id, allowed_country_codes, allowed_prefixes, allow_premium,"
            " updated_at",
            org_id, allowed_country_codes, allowed_prefixes, allow_premium)
    assert row is not None  # an upsert always returns its row
    return row
