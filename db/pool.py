"""The asyncpg connection pool: JSON codecs for json/jsonb and the pgvector codec."""

from __future__ import annotations

import json

import asyncpg
from pgvector.asyncpg import register_vector


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    await register_vector(conn)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    # No reset query on release: AICO keeps no per-connection session state (advisory locks are
    # taken on dedicated connections or inside transactions), and the reset costs two round trips
    # on every executor step.
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_no_reset
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None
