"""The session sweeper: every API replica, every `settings.limits.voice_sweep_every_s`, closes
the voice sessions whose call lost its host.

A call's lease (`voice_leases`) is renewed by the replica that holds the caller's socket every
third of `voice_lease_ttl_s`. A lease past its expiry means that replica (or its event loop) is
gone: the session, if still live, is marked `failed` with the reason, and the lease dropped. So a
session is closed at most `voice_lease_ttl_s + voice_sweep_every_s` after its replica died.
(A live replica whose actor died records the failure itself, see routes/voice.py.) The sweep
also prunes used voice tokens past their expiry and stored live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import asyncpg

from db import live_events as live_events_db
from db import memory_episodes as memory_db
from db import session_failures
from db import voice_leases as leases_db

log = logging.getLogger("aico.voice_sweeper")

HOST_LOST = "voice_host_lost"
LIVE_EVENTS_KEEP_S = 3600.0


async def sweep_voice_sessions(pool: asyncpg.Pool) -> list[UUID]:
    """One sweep; returns the sessions it failed."""
    failed: list[UUID] = []
    for lease in await leases_db.list_voice_leases_expired(pool):
        sid = lease["session_id"]
        if lease["status"] in ("active", "waiting"):
            reason = f"{HOST_LOST}: its lease (holder {lease['holder']}) expired at" \
                     f" {lease['expires_at'].isoformat()}"
            if await session_failures.fail_sessions_row(pool, session_id=sid, reason=reason):
                log.warning("session %s failed: %s", sid, reason)
                failed.append(sid)
        await leases_db.delete_voice_leases_expired_row(pool, session_id=sid,
                                                         holder=lease["holder"])
    await leases_db.delete_voice_token_uses_expired(pool)
    await live_events_db.delete_live_events_older_than(pool, seconds=LIVE_EVENTS_KEEP_S)
    await memory_db.prune_expired_memory(pool)  # each organization's memory retention
    return failed


class VoiceSweeper:
    """The periodic sweep of one replica (every replica sweeps; a sweep is idempotent)."""

    def __init__(self, pool: asyncpg.Pool, *, every_s: float) -> None:
        self.pool = pool
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="voice-sweeper")

    async def _run(self) -> None:
        while not self.pool.is_closing():  # the replica is shutting down
            try:
                await sweep_voice_sessions(self.pool)
            except Exception:  # the next sweep retries; a database blip must not end the loop
                log.exception("voice session sweep failed")
            await asyncio.sleep(self.every_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
