"""What the channels' number tables (`phone_numbers`, `whatsapp_numbers`) share: an
organization's numbers are listed, read, changed and deleted the same way; each table's own
module keeps what differs (its insert, the carrier's lookup, its columns and what may change).
The table and column names come from those modules, never from a caller's input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg

from db.pool import Conn, org_transaction

NumbersTable = Literal["phone_numbers", "whatsapp_numbers"]


async def list_numbers(conn: Conn, table: NumbersTable, columns: str, *,
                       org_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            f"SELECT {columns} FROM {table} WHERE org_id = $1 ORDER BY created_at, id", org_id)


async def get_number(conn: Conn, table: NumbersTable, columns: str, *, org_id: UUID,
                     number_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(f"SELECT {columns} FROM {table} WHERE org_id = $1 AND id = $2",
                                org_id, number_id)


async def update_number(conn: Conn, table: NumbersTable, columns: str, *, org_id: UUID,
                        number_id: UUID, changes: dict[str, Any], updatable: Sequence[str],
                        also_set: Sequence[str] = ()) -> asyncpg.Record | None:
    """Apply `changes` (each key a column in `updatable`, else ValueError naming the others)
    and the fixed assignments `also_set`; the changed row, or None when it is not the org's."""
    sets = [f"{name} = ${i}" for i, name in enumerate(changes, start=3) if name in updatable]
    if len(sets) != len(changes):
        raise ValueError(f"not updatable: {sorted(set(changes) - set(updatable))}")
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            f"UPDATE {table} SET {', '.join([*sets, *also_set, 'updated_at = now()'])}"
            f" WHERE org_id = $1 AND id = $2 RETURNING {columns}",
            org_id, number_id, *changes.values())


async def delete_number(conn: Conn, table: NumbersTable, *, org_id: UUID,
                        number_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(f"DELETE FROM {table} WHERE org_id = $1 AND id = $2",
                                 org_id, number_id)
    return status.endswith(" 1")
