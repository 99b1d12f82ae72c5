"""Re-embedding, shared by the two tables that keep vectors (`knowledge_chunks`,
`memory_episodes`): the organization's rows embedded with another model than the current one,
and their new vectors written back with the model that made them. The table name comes from a
closed set (never from a caller's input), so it is written into the SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg

from db.pool import Conn, org_transaction

EmbeddedTable = Literal["knowledge_chunks", "memory_episodes"]

# What a row's text is made of, per table (a chunk is embedded with its heading).
_TEXT_COLUMNS: dict[str, str] = {"knowledge_chunks": "heading, text", "memory_episodes": "text"}


async def stale_rows(conn: Conn, table: EmbeddedTable, *, org_id: UUID, model: str,
                     limit: int) -> list[asyncpg.Record]:
    """Up to `limit` of the organization's rows of `table` embedded with another model than
    `model`, in id order: `id` and the table's text columns."""
    columns = _TEXT_COLUMNS[table]  # a KeyError for a table outside the closed set
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            f"SELECT id, {columns} FROM {table} WHERE org_id = $1 AND embedding_model <> $2"
            " ORDER BY id LIMIT $3", org_id, model, limit)


async def set_embeddings(conn: Conn, table: EmbeddedTable, *, org_id: UUID, model: str,
                         vectors: Sequence[tuple[int, Any]]) -> None:
    """Store each `(row id, vector)` of `table`, recording `model` as the one that made it."""
    if table not in _TEXT_COLUMNS:  # the name goes into the SQL: only the closed set
        raise ValueError(f"not a table that keeps embeddings: {table!r}")
    async with org_transaction(conn, org_id) as c:
        await c.executemany(
            f"UPDATE {table} SET embedding = $3, embedding_model = $4"
            " WHERE org_id = $1 AND id = $2",
            [(org_id, row_id, vector, model) for row_id, vector in vectors])
