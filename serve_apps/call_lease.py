"""What every call transport that ends at an API replica does around its call: the voice
WebSocket, Twilio's and Telnyx's media streams.

    holder = new_holder()                       # this replica + this connection
    ... leases_db.acquire_voice_leases_row(..., holder=holder, ...)
    heartbeat = asyncio.create_task(keep_lease(pool, sid, holder, ttl_s, on_lost=close))
    ... run the call; on a host failure: await record_failure(pool, sid, reason)
    await release_lease(pool, sid, holder, started=True)

The lease in PostgreSQL says which replica carries a session's call; renewed every third of its
time to live. A lost lease (the sweeper took it) ends the connection. At the end the lease is
released once the session is closed: a call that ran without recording its end is failed here,
and if even that fails the lease is kept, so it lapses and the sweeper closes the session. A
call's end is never lost silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from db import session_failures
from db import sessions as sessions_db
from db import voice_leases as leases_db
from serve_apps.live import publish_live_event

log = logging.getLogger("aico.call_lease")

# Names this replica as a lease holder (with a per-connection suffix).
REPLICA = f"{socket.gethostname()}:{os.getpid()}"

# The pipeline events live observers (the dashboard's session page) are sent.
LIVE_TYPES = frozenset({
    "transcript", "metrics", "interrupted", "timer", "dtmf", "end", "transfer",
    "agent_speech_started", "agent_speech_ended", "user_speech_started", "resumed"})


def new_holder() -> str:
    return f"{REPLICA}:{uuid.uuid4().hex[:12]}"


async def keep_lease(pool: asyncpg.Pool, session_id: UUID, holder: str, ttl_s: float, *,
                     on_lost: Callable[[], Awaitable[Any]]) -> None:
    """Renew the lease while the call lives; once it is lost (swept), `on_lost()` ends the
    connection."""
    while True:
        await asyncio.sleep(ttl_s / 3)
        try:
            kept = await leases_db.renew_voice_leases_row(pool, session_id=session_id,
                                                          holder=holder, ttl_s=ttl_s)
        except Exception:  # a blip: the next renewal retries before the lease expires
            log.warning("could not renew the lease of %s", session_id, exc_info=True)
            continue
        if not kept:
            log.warning("session %s: lease lost; closing its connection", session_id)
            await on_lost()
            return


async def record_failure(pool: asyncpg.Pool, session_id: UUID, reason: str) -> None:
    try:
        await session_failures.fail_sessions_row(pool, session_id=session_id, reason=reason)
    except Exception:  # the call's end retries; failing that the sweeper closes it
        log.exception("session %s: could not record its failure (%s)", session_id, reason)


async def release_lease(pool: asyncpg.Pool, session_id: UUID, holder: str, *,
                        started: bool) -> None:
    """Release the lease once the session is closed (see the module's docstring)."""
    try:
        row = await sessions_db.get_session_brief(pool, session_id=session_id)
        if started and row is not None and row["status"] in ("active", "waiting"):
            await session_failures.fail_sessions_row(
                pool, session_id=session_id, reason="session.ended was not recorded")
        await leases_db.release_voice_leases_row(pool, session_id=session_id, holder=holder)
    except Exception:  # the lease lapses and the sweeper closes the session
        log.exception("session %s: could not close the call's lease; the sweeper will",
                      session_id)


def live_observer(pool: asyncpg.Pool, org_id: UUID,
                  session_id: UUID) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """Publishes a call's live events to the session's observers."""
    async def observe(event: dict[str, Any]) -> None:
        if event.get("type") in LIVE_TYPES:
            await publish_live_event(pool, org_id=org_id, session_id=session_id, event=event)

    return observe
