"""The `rate_limit_windows` table: fixed-window counters per organization and bucket, so every
API replica counts against the same limit.

One upsert per request: it takes a slot when the window has one left and returns nothing when it
is spent, so refused requests do not push the window further. Windows are aligned to the
database's clock; when an organization opens a new window of a bucket, its windows older than
two window lengths are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from db.pool import org_transaction

# `$3` is the window length in seconds; windows start at multiples of it (unix time).
_TAKE_SLOT = """
INSERT INTO rate_limit_windows AS w (org_id, bucket, window_start, count)
VALUES ($1, $2, to_timestamp(floor(extract(epoch FROM now()) / $3) * $3), 1)
ON CONFLICT (org_id, bucket, window_start)
    DO UPDATE SET count = w.count + 1 WHERE w.count < $4
RETURNING count, window_start
"""
_SECONDS_LEFT = "SELECT ceil($1 - mod(extract(epoch FROM now())::numeric, $1))::int"
_DELETE_OLD = """
DELETE FROM rate_limit_windows
WHERE org_id = $1 AND window_start < $2::timestamptz - make_interval(secs => 2 * $3::float8)
"""


@dataclass(frozen=True)
class RateWindow:
    allowed: bool
    count: int
    retry_after_s: int


async def take_rate_limit_slot(pool: asyncpg.Pool, *, org_id: UUID, bucket: str, limit: int,
                               window_s: int = 60) -> RateWindow:
    """Count one request against `bucket`; `allowed` is false when the window is spent."""
    # One transaction acting for the organization (row-level security).
    async with org_transaction(pool, org_id) as conn:
        row = await conn.fetchrow(_TAKE_SLOT, org_id, bucket, window_s, limit)
        if row is None:
            left = await conn.fetchval(_SECONDS_LEFT, window_s)
            return RateWindow(allowed=False, count=limit, retry_after_s=max(1, left))
        if row["count"] == 1:
            await conn.execute(_DELETE_OLD, org_id, row["window_start"], window_s)
        return RateWindow(allowed=True, count=row["count"], retry_after_s=0)
