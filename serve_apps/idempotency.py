"""`Idempotency-Key` on the HTTP triggers (`POST /v1/flows/{id}/sessions`,
`POST /v1/sessions/{id}/messages`): a retry with the same key and request returns the first
response (for `settings.limits.idempotency_ttl_s`, 24 h by default, with the header
`Idempotent-Replayed: true`); the same key with another request is 422; concurrent retries run
once (the key is a row claimed in PostgreSQL, `db.idempotency`: the others wait for the
first's response, 409 after a minute).

Only a successful response is kept: a request that fails (4xx/5xx) releases its key, so the
client may fix the cause and retry with the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from aico.errors import Conflict, ValidationFailed
from aico.settings import Settings
from db.idempotency import (
    claim_idempotency_key,
    release_idempotency_key,
    store_idempotent_response,
)

# A retry that finds the first request still running waits for its response this long.
WAIT_FOR_FIRST_S = 60.0
POLL_S = 0.05

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="a key of your choosing (e.g. a UUID): a retry with it runs once")]


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, jsonable_encoder(body)], sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def run_idempotent(
    pool: asyncpg.Pool, settings: Settings, *, org_id: UUID, key: str | None, method: str,
    path: str, body: Any, status_code: int, run: Callable[[], Awaitable[Any]],
) -> Any:
    """`run()`'s result, or the stored first response for this key (a JSONResponse)."""
    if key is None:
        return await run()
    digest = request_hash(method, path, body)
    deadline = time.monotonic() + WAIT_FOR_FIRST_S
    while True:
        held = await claim_idempotency_key(pool, org_id=org_id, key=key, request_hash=digest,
                                           ttl_s=settings.limits.idempotency_ttl_s)
        if held is None:
            break  # ours: run it
        if held.status_code < 0:
            continue  # released as we looked: claim again
        if held.request_hash != digest:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request (method, path or"
                " body); use a new key for a new request",
                details=[{"field": "Idempotency-Key", "message": "reused for another request"}])
        if held.status_code > 0:
            return JSONResponse(held.response, status_code=held.status_code,
                                headers={"Idempotent-Replayed": "true"})
        # The first request is still running: wait for its response (or its failure).
        if time.monotonic() > deadline:
            raise Conflict(f"a request with this Idempotency-Key is still running after"
                           f" {WAIT_FOR_FIRST_S:g} s; retry later")
        await asyncio.sleep(POLL_S)
    try:
        result = await run()
    except BaseException:
        await asyncio.shield(release_idempotency_key(pool, org_id=org_id, key=key))
        raise
    await store_idempotent_response(pool, org_id=org_id, key=key, status_code=status_code,
                                    response=jsonable_encoder(result))
    return result
