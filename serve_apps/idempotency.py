"""`Idempotency-Key` on the HTTP triggers (`POST /v1/flows/{id}/sessions`,
`POST /v1/sessions/{id}/messages`): a retry with the same key and request returns the first
response (for `settings.limits.idempotency_ttl_s`, 24 h by default, with the header
`Idempotent-Replayed: true`); the same key with another request is 422; concurrent retries run
once (the key is a row claimed in PostgreSQL, `db.idempotency`).

Only a successful response is kept: a request that fails (4xx/5xx) releases its key, so the
client may fix the cause and retry with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from aico.errors import ValidationFailed
from aico.settings import Settings
from db.idempotency import claim_idempotency_key

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
    async with claim_idempotency_key(pool, org_id=org_id, key=key, request_hash=digest,
                                     ttl_s=settings.limits.idempotency_ttl_s) as claim:
        if claim.stored is not None:
            if claim.stored.request_hash != digest:
                raise ValidationFailed(
                    "this Idempotency-Key was used with a different request (method, path or"
                    " body); use a new key for a new request",
                    details=[{"field": "Idempotency-Key", "message": "reused for another request"}])
            return JSONResponse(claim.stored.response, status_code=claim.stored.status_code,
                                headers={"Idempotent-Replayed": "true"})
        result = await run()
        await claim.store(status_code, jsonable_encoder(result))
        return result
