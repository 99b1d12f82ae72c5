"""Idempotency keys: a row claimed in PostgreSQL per (organization, key).

    claim = await claim_idempotency_key(pool, org_id=..., key=..., request_hash=..., ttl_s=...)
    if claim is None:                       # ours: run, then store (or release on failure)
        await store_idempotent_response(pool, org_id=..., key=..., status_code=201, response=...)
    else:                                   # an earlier request's row: its hash and response
        ...                                 # (status_code 0: still running)

The claim is one committed INSERT (the primary key decides who runs); the request then runs on
connections of its own, holding none of the claim's (a claim held open in a transaction would
pin a pool connection per request in flight and could starve the requests themselves). A row
older than `ttl_s` is claimed afresh, and so is a row still "running" after `stale_s` (its
process died before storing a response).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from db.pool import Conn, org_transaction


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int  # 0: the first request is still running
    response: Any


async def claim_idempotency_key(conn: Conn, *, org_id: UUID, key: str, request_hash: str,
                                ttl_s: float, stale_s: float = 300.0) -> StoredResponse | None:
    """None when this request claimed the key; otherwise the row that holds it."""
    async with org_transaction(conn, org_id) as c:
        claimed = await c.fetchval(
            "INSERT INTO idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT (org_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
            "   status_code = 0, response = NULL, created_at = now()"
            " WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)"
            "    OR (idempotency_keys.status_code = 0"
            "        AND idempotency_keys.created_at < now() - make_interval(secs => $5))"
            " RETURNING true", org_id, key, request_hash, ttl_s, stale_s)
        if claimed:
            return None
        row = await c.fetchrow(
            "SELECT request_hash, status_code, response FROM idempotency_keys"
            " WHERE org_id = $1 AND key = $2", org_id, key)
    if row is None:  # released between our INSERT and SELECT: the caller claims again
        return StoredResponse(request_hash, -1, None)
    return StoredResponse(row["request_hash"], row["status_code"], row["response"])


async def store_idempotent_response(conn: Conn, *, org_id: UUID, key: str, status_code: int,
                                    response: Any) -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "UPDATE idempotency_keys SET status_code = $3, response = $4"
            " WHERE org_id = $1 AND key = $2", org_id, key, status_code, response)


async def release_idempotency_key(conn: Conn, *, org_id: UUID, key: str) -> None:
    """The request failed: the key is free for a fixed retry."""
    async with org_transaction(conn, org_id) as c:
        await c.execute("DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2"
                        " AND status_code = 0", org_id, key)
