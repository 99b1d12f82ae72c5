"""The `phone_calls` and `phone_call_events` tables: every phone call of an organization, inbound
or outbound, keyed by the carrier's own call id (so a redelivered webhook is recognised), and
what happened on it that a person may need to see (a refused transfer, a carrier status).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import Conn, lookup_transaction, org_transaction, session_transaction

COLUMNS = ("id, org_id, number_id, session_id, provider, direction, call_ref, from_number,"
           " to_number, status, answered_at, ended_at, failure, created_at, updated_at")
# A carrier's final call statuses (Twilio's and Telnyx's words): the call is over.
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled",
                            "hangup", "refused"})


async def insert_phone_calls_row(conn: Conn, *, org_id: UUID, number_id: UUID | None,
                                 provider: str, direction: str, call_ref: str | None,
                                 from_number: str, to_number: str, status: str,
                                 session_id: UUID | None = None,
                                 answered: bool = False) -> asyncpg.Record | None:
    """The new call, or None when the carrier's call id is recorded already (a replay)."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "INSERT INTO phone_calls (org_id, number_id, session_id, provider, direction,"
            " call_ref, from_number, to_number, status, answered_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
            " CASE WHEN $10::boolean THEN now() END)"
            f" ON CONFLICT (provider, call_ref) DO NOTHING RETURNING {COLUMNS}",
            org_id, number_id, session_id, provider, direction, call_ref, from_number,
            to_number, status, answered)


async def find_phone_call(conn: Conn, *, provider: str, call_ref: str) -> asyncpg.Record | None:
    """The call a carrier names by its id, whichever organization it belongs to."""
    async with lookup_transaction(conn, "aico_phone_call_org", provider, call_ref) as c:
        return await c.fetchrow(
            f"SELECT {COLUMNS} FROM phone_calls WHERE provider = $1 AND call_ref = $2",
            provider, call_ref)


async def get_phone_call(conn: Conn, *, org_id: UUID, call_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(f"SELECT {COLUMNS} FROM phone_calls WHERE org_id = $1 AND id = $2",
                                org_id, call_id)


async def get_phone_call_of_session(conn: Conn, *, session_id: UUID) -> asyncpg.Record | None:
    async with session_transaction(conn, session_id) as c:
        return await c.fetchrow(
            f"SELECT {COLUMNS} FROM phone_calls WHERE session_id = $1"
            " ORDER BY created_at DESC LIMIT 1", session_id)


async def list_phone_calls(conn: Conn, *, org_id: UUID, number_id: UUID | None = None,
                           limit: int = 50) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            f"SELECT {COLUMNS} FROM phone_calls WHERE org_id = $1"
            " AND ($2::uuid IS NULL OR number_id = $2)"
            " ORDER BY created_at DESC, id LIMIT $3", org_id, number_id, limit)


async def count_phone_calls_live_outbound(conn: Conn, *, org_id: UUID) -> int:
    """Outbound calls not ended yet (a call left open past four hours is not counted: its end
    was lost, and it must not block the organization's calls for ever)."""
    async with org_transaction(conn, org_id) as c:
        return int(await c.fetchval(
            "SELECT count(*) FROM phone_calls WHERE org_id = $1 AND direction = 'outbound'"
            " AND ended_at IS NULL AND created_at > now() - interval '4 hours'", org_id))


async def update_phone_calls_row(conn: Conn, *, org_id: UUID, call_id: UUID,
                                 call_ref: str | None = None, session_id: UUID | None = None,
                                 status: str | None = None,
                                 failure: dict[str, Any] | None = None) -> asyncpg.Record | None:
    """Set what is given; a final status (or a failure) ends the call once."""
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "UPDATE phone_calls SET call_ref = COALESCE($3, call_ref),"
            " session_id = COALESCE($4, session_id), status = COALESCE($5, status),"
            " failure = COALESCE($6::jsonb, failure),"
            " ended_at = CASE WHEN ended_at IS NULL AND ($5 = ANY($7::text[]) OR $6::jsonb IS NOT NULL)"
            "   THEN now() ELSE ended_at END, updated_at = now()"
            f" WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}",
            org_id, call_id, call_ref, session_id, status, failure, sorted(FINAL_STATUSES))


async def answer_phone_calls_row(conn: Conn, *, org_id: UUID, call_id: UUID) -> bool:
    """Mark the call answered; False when it was answered before (a replayed answer webhook)."""
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(
            "UPDATE phone_calls SET answered_at = now(), status = 'in-progress',"
            " updated_at = now() WHERE org_id = $1 AND id = $2 AND answered_at IS NULL"
            " AND ended_at IS NULL", org_id, call_id)
    return status.endswith(" 1")


async def insert_phone_call_events_row(conn: Conn, *, org_id: UUID, call_id: UUID, kind: str,
                                       detail: dict[str, Any]) -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "INSERT INTO phone_call_events (org_id, call_id, kind, detail)"
            " VALUES ($1, $2, $3, $4::jsonb)", org_id, call_id, kind, detail)


async def list_phone_call_events(conn: Conn, *, org_id: UUID,
                                 call_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT id, kind, detail, created_at FROM phone_call_events"
            " WHERE org_id = $1 AND call_id = $2 ORDER BY id", org_id, call_id)


def call_view(row: asyncpg.Record) -> dict[str, Any]:
    """A call as the API shows it."""
    return {k: row[k] for k in ("id", "number_id", "session_id", "provider", "direction",
                                "call_ref", "from_number", "to_number", "status", "answered_at",
                                "ended_at", "failure", "created_at")}


async def voice_lease_live_for_session(conn: Conn, *, session_id: UUID) -> bool:
    """Whether a stream (an API replica's lease in `voice_leases`) still carries the session."""
    async with session_transaction(conn, session_id) as c:
        return bool(await c.fetchval(
            "SELECT EXISTS (SELECT 1 FROM voice_leases WHERE session_id = $1"
            " AND expires_at > now())", session_id))
