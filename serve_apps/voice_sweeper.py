"""The session sweeper: every API replica, every `settings.limits.voice_sweep_every_s`, closes
the voice sessions whose call lost its host.

A call's lease (`voice_leases`) is renewed by the replica that holds the caller's socket every
third of `voice_lease_ttl_s`. A lease past its expiry means that replica (or its event loop) is
gone: the session, if still live, is marked `failed` with the reason, and the lease dropped. So a
session is closed at most `voice_lease_ttl_s + voice_sweep_every_s` after its replica died.
(A live replica whose actor died records the failure itself, see routes/voice.py.)

On Ray a call's actor outlives the replica that held its socket (actors/call_placement.py): while
that actor still carries the call, the sweep leaves the session alone, so the caller can reconnect
through any replica and take over the lapsed lease; if nobody does, the actor's supervisor hangs
the call up after `voice.orphan_after_s` (reason `transport_lost`) and the next sweep drops the
lease. The sweep also prunes used voice tokens past their expiry and stored live events.

A voice session whose caller never connected (its page closed before the call, a client that
gave up) holds no lease, so the lease sweep never sees it: once its voice token has expired, plus
`NEVER_CONNECTED_MARGIN_S` for an attach that was verified just before, no socket can attach with
it, and the sweep ends the session through the executor (`session.ended`, reason
`never_connected`), so its end reaches webhooks and the dashboard like a hang-up. A session that
did connect (a lease, a token use, or its flow started) is never touched by this rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg

from aico.settings import Settings, get_settings
from db import live_events as live_events_db
from db import memory_episodes as memory_db
from db import session_failures
from db import voice_leases as leases_db
from flows.events import InboundEvent
from flows.executor import run_step

log = logging.getLogger("aico.voice_sweeper")

HOST_LOST = "voice_host_lost"
NEVER_CONNECTED = "never_connected"
# After the token's expiry: an attach verified just before it still takes its lease meanwhile.
NEVER_CONNECTED_MARGIN_S = 60.0
LIVE_EVENTS_KEEP_S = 3600.0


CallAlive = Callable[[UUID], Awaitable[bool]]


async def sweep_voice_sessions(pool: asyncpg.Pool, *, call_alive: CallAlive | None = None,
                               settings: Settings | None = None) -> list[UUID]:
    """One sweep; returns the sessions it failed. `call_alive(session_id)` says whether an
    actor still carries that session's call (its transport may reconnect). With `settings`,
    it also ends the sessions that never connected (`end_never_connected`)."""
    failed: list[UUID] = []
    for lease in await leases_db.list_voice_leases_expired(pool):
        sid = lease["session_id"]
        if lease["status"] in ("active", "waiting"):
            if call_alive is not None and await _still_carried(call_alive, sid):
                continue  # kept: a reconnect takes the lapsed lease over
            reason = f"{HOST_LOST}: its lease (holder {lease['holder']}) expired at" \
                     f" {lease['expires_at'].isoformat()}"
            if await session_failures.fail_sessions_row(pool, session_id=sid, reason=reason):
                log.warning("session %s failed: %s", sid, reason)
                failed.append(sid)
        await leases_db.delete_voice_leases_expired_row(pool, session_id=sid,
                                                         holder=lease["holder"])
    if settings is not None:
        await end_never_connected(pool, settings=settings)
    await leases_db.delete_voice_token_uses_expired(pool)
    await live_events_db.delete_live_events_older_than(pool, seconds=LIVE_EVENTS_KEEP_S)
    await memory_db.prune_expired_memory(pool)  # each organization's memory retention
    return failed


async def end_never_connected(pool: asyncpg.Pool, *, settings: Settings) -> list[UUID]:
    """End the live voice sessions no socket attached to within their voice token's TTL (plus
    the margin); returns them. Ended through the executor, so a session that ended meanwhile
    is left as it is."""
    ended: list[UUID] = []
    older_than_s = settings.voice.token_ttl_s + NEVER_CONNECTED_MARGIN_S
    for row in await leases_db.list_voice_sessions_never_connected(pool,
                                                                  older_than_s=older_than_s):
        sid = row["session_id"]
        try:
            await run_step(pool, sid, InboundEvent.session_ended(NEVER_CONNECTED),
                           settings=settings)
        except Exception:  # the next sweep tries again; one session must not stop the rest
            log.exception("session %s: could not end it (never connected)", sid)
            continue
        log.info("session %s ended: no call connected since %s", sid,
                 row["created_at"].isoformat())
        ended.append(sid)
    return ended


async def _still_carried(call_alive: CallAlive, session_id: UUID) -> bool:
    try:
        return await call_alive(session_id)
    except Exception:  # cannot tell: close it as before, so a session is never left open
        log.warning("session %s: could not ask whether its call is alive", session_id,
                    exc_info=True)
        return False


class VoiceSweeper:
    """The periodic sweep of one replica (every replica sweeps; a sweep is idempotent)."""

    def __init__(self, pool: asyncpg.Pool, *, every_s: float,
                 call_alive: CallAlive | None = None, settings: Settings | None = None) -> None:
        self.pool = pool
        self.every_s = every_s
        self.call_alive = call_alive
        # The replica's settings (its voice token TTL, the step's bounds); when not passed, the
        # process's own, read once by the first sweep.
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="voice-sweeper")

    async def _run(self) -> None:
        while not self.pool.is_closing():  # the replica is shutting down
            try:
                await sweep_voice_sessions(self.pool, call_alive=self.call_alive,
                                           settings=self._settings())
            except Exception:  # the next sweep retries; a database blip must not end the loop
                log.exception("voice session sweep failed")
            await asyncio.sleep(self.every_s)

    def _settings(self) -> Settings | None:
        """The settings the never-connected rule needs; None (that rule skipped, the lease sweep
        still runs) while the process's own cannot be read."""
        if self.settings is None:
            try:
                self.settings = get_settings()
            except Exception:  # a bad AICO_* value: the lease sweep must go on regardless
                log.exception("voice sweeper: settings unreadable; never-connected rule skipped")
        return self.settings

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
