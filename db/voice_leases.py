"""Voice leases and voice token uses: one live socket per voice session, one attach per token.

`voice_leases` holds, per session, the API replica connection that carries the caller's socket
and until when; the holder renews it while the call lives. A lease past its expiry means the
holder is gone: the sweeper fails the session (`list_voice_leases_expired`), or a new holder
takes it over. `voice_token_uses` records each voice token (by its sha256) the first time it
attaches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from db.pool import org_transaction, session_transaction

Conn = asyncpg.Connection | asyncpg.Pool

LeaseOutcome = Literal["acquired", "busy", "org_cap"]


async def acquire_voice_leases_row(
    pool: asyncpg.Pool, *, org_id: UUID, session_id: UUID, holder: str, ttl_s: float,
    max_per_org: int,
) -> LeaseOutcome:
    """Take the session's lease unless a live holder has it ("busy") or the organization already
    has `max_per_org` live calls ("org_cap"). Counted under a per-organization transaction lock,
    so concurrent attaches on any replica cannot overshoot the cap."""
    async with org_transaction(pool, org_id) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                           f"aico.voice_leases:{org_id}")
        live = await conn.fetchval(
            "SELECT count(*) FROM voice_leases"
            " WHERE org_id = $1 AND expires_at > now() AND session_id <> $2",
            org_id, session_id)
        if live >= max_per_org:
            return "org_cap"
        taken = await conn.fetchval(
            "INSERT INTO voice_leases (session_id, org_id, holder, expires_at)"
            " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
            " ON CONFLICT (session_id) DO UPDATE SET holder = EXCLUDED.holder,"
            "   acquired_at = now(), renewed_at = now(), expires_at = EXCLUDED.expires_at"
            " WHERE voice_leases.expires_at <= now()"
            " RETURNING holder",
            session_id, org_id, holder, float(ttl_s))
        return "acquired" if taken == holder else "busy"


async def renew_voice_leases_row(conn: Conn, *, session_id: UUID, holder: str,
                                 ttl_s: float) -> bool:
    """Heartbeat: False when the lease is no longer this holder's (swept or taken over)."""
    async with session_transaction(conn, session_id) as c:
        renewed = await c.fetchval(
            "UPDATE voice_leases SET renewed_at = now(), expires_at = now() + make_interval(secs => $3)"
            " WHERE session_id = $1 AND holder = $2 RETURNING 1",
            session_id, holder, float(ttl_s))
    return renewed == 1


async def release_voice_leases_row(conn: Conn, *, session_id: UUID, holder: str) -> None:
    async with session_transaction(conn, session_id) as c:
        await c.execute("DELETE FROM voice_leases WHERE session_id = $1 AND holder = $2",
                           session_id, holder)


async def count_voice_leases_live(conn: Conn, *, org_id: UUID) -> int:
    async with org_transaction(conn, org_id) as c:
        return int(await c.fetchval(
            "SELECT count(*) FROM voice_leases WHERE org_id = $1 AND expires_at > now()",
            org_id))


async def list_voice_leases_expired(conn: Conn, *, limit: int = 100) -> list[asyncpg.Record]:
    """Leases whose holder stopped renewing, with their session's status (the sweeper's work)."""
    # Every organization's leases: through the owner's narrow function (migration 0051).
    return await conn.fetch(
        "SELECT session_id, org_id, holder, expires_at, status"
        " FROM aico_expired_voice_leases($1)", limit)


async def delete_voice_leases_expired_row(conn: Conn, *, session_id: UUID, holder: str) -> bool:
    """Drop a lease only if it is still the expired one we looked at (no new holder took it)."""
    async with session_transaction(conn, session_id) as c:
        deleted = await c.fetchval(
            "DELETE FROM voice_leases WHERE session_id = $1 AND holder = $2 AND expires_at <= now()"
            " RETURNING 1", session_id, holder)
    return deleted == 1


async def insert_voice_token_uses_row(conn: Conn, *, token_id: str, org_id: UUID,
                                      session_id: UUID, expires_at: datetime) -> bool:
    """Record a token's attach; False when it had attached before."""
    async with org_transaction(conn, org_id) as c:
        inserted = await c.fetchval(
            "INSERT INTO voice_token_uses (token_id, org_id, session_id, expires_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (token_id) DO NOTHING RETURNING 1",
            token_id, org_id, session_id, expires_at)
    return inserted == 1


async def delete_voice_token_uses_expired(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT aico_delete_expired_voice_token_uses()"))


async def get_voice_token_uses_exists(conn: Conn, *, org_id: UUID, token_id: str) -> bool:
    async with org_transaction(conn, org_id) as c:
        return bool(await c.fetchval("SELECT 1 FROM voice_token_uses WHERE token_id = $1",
                                     token_id))


async def list_voice_sessions_never_connected(conn: Conn, *, older_than_s: float,
                                              limit: int = 100) -> list[asyncpg.Record]:
    """Live voice sessions older than `older_than_s` that no socket ever attached to (no lease,
    no token use, the flow never started): the sweeper ends them (migration 0053)."""
    return await conn.fetch(
        "SELECT session_id, org_id, created_at"
        " FROM aico_voice_sessions_never_connected($1, $2)", float(older_than_s), limit)
