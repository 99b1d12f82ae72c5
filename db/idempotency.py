"""Idempotency keys: a row claimed in PostgreSQL per (organization, key).

    async with claim_idempotency_key(pool, org_id=..., key=..., request_hash=..., ttl_s=...) as c:
        if c.stored is not None:      # an earlier request with this key: its hash and response
            ...
        else:                         # ours: run, then store the response (committed on exit)
            await c.store(201, body)

The claim is an INSERT inside a transaction held open while the request runs: a concurrent
request with the same key blocks on the primary key until the first commits (then reads its
stored response) or rolls back (then claims the key itself). A row older than `ttl_s` is
claimed afresh.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Connection, org_transaction


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int
    response: Any


@dataclass
class IdempotencyClaim:
    conn: Connection
    org_id: UUID
    key: str
    stored: StoredResponse | None

    async def store(self, status_code: int, response: Any) -> None:
        await self.conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, response = $4"
            " WHERE org_id = $1 AND key = $2", self.org_id, self.key, status_code, response)


@asynccontextmanager
async def claim_idempotency_key(pool: asyncpg.Pool, *, org_id: UUID, key: str, request_hash: str,
                                ttl_s: float) -> AsyncIterator[IdempotencyClaim]:
    async with pool.acquire() as conn, org_transaction(conn, org_id) as c:
        claimed = await c.fetchval(
            "INSERT INTO idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT (org_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
            "   status_code = 0, response = NULL, created_at = now()"
            " WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)"
            " RETURNING true", org_id, key, request_hash, ttl_s)
        stored = None
        if not claimed:
            row = await c.fetchrow(
                "SELECT request_hash, status_code, response FROM idempotency_keys"
                " WHERE org_id = $1 AND key = $2", org_id, key)
            assert row is not None  # the conflicting row is committed: we waited for it
            stored = StoredResponse(row["request_hash"], row["status_code"], row["response"])
        yield IdempotencyClaim(conn=c, org_id=org_id, key=key, stored=stored)


async def delete_idempotency_keys_older_than(conn: Connection | asyncpg.Pool, *, org_id: UUID,
                                            seconds: float) -> int:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(
            "DELETE FROM idempotency_keys WHERE org_id = $1"
            " AND created_at < now() - make_interval(secs => $2)", org_id, seconds)
    return int(status.split()[-1])
