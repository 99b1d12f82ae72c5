"""Live observers of voice sessions, fanned out from ONE PostgreSQL LISTEN per API replica.

    hub = live_hub(state)                       # the replica's hub, listening on first use
    async with hub.subscribe(session_id) as events:
        async for batch in items_until(events, disconnected): ...
    await publish_live_event(pool, org_id=..., session_id=..., event={...})

The publisher (the replica that carries the call) sends each event with `pg_notify` on
`aico_live`; an event whose JSON is over the NOTIFY payload limit (8,000 bytes) is stored in
`live_events` and only its id is notified, so it reaches observers in full and is never dropped.
Every replica holds one connection (its own, not the pool's) that listens and hands each event
to the queues of that replica's observers of the session; observers per session are capped
(`settings.limits.live_observers_per_session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from aico.errors import AicoError
from db import live_events as live_events_db

log = logging.getLogger("aico.live")

LIVE_CHANNEL = "aico_live"
# PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; keep a margin.
NOTIFY_MAX_BYTES = 7900
OBSERVER_QUEUE = 1000


class TooManyObservers(AicoError):
    status, code = 429, "too_many_observers"


async def publish_live_event(pool: asyncpg.Pool, *, org_id: UUID, session_id: UUID,
                             event: dict[str, Any]) -> None:
    payload = json.dumps({"session_id": str(session_id), **event}, default=str)
    if len(payload.encode()) > NOTIFY_MAX_BYTES:
        stored = await live_events_db.insert_live_events_row(
            pool, org_id=org_id, session_id=session_id, payload=json.loads(payload))
        payload = json.dumps({"session_id": str(session_id), "ref": stored})
    await pool.execute("SELECT pg_notify($1, $2)", LIVE_CHANNEL, payload)


class LiveHub:
    """One replica's listener and its observers' queues."""

    def __init__(self, pool: asyncpg.Pool, *, max_per_session: int,
                 connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self.pool = pool
        self._connect = connect
        self.max_per_session = max_per_session
        self.observers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: UUID | str
                        ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        sid = str(session_id)
        queues = self.observers.setdefault(sid, set())
        if len(queues) >= self.max_per_session:
            raise TooManyObservers(
                f"session {sid} already has {self.max_per_session} live observers on this"
                " replica (settings.limits.live_observers_per_session)")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=OBSERVER_QUEUE)
        queues.add(queue)
        try:
            await self._listen()
            yield queue
        finally:
            queues.discard(queue)
            if not queues:
                self.observers.pop(sid, None)

    async def _listen(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            # A connection of its own, outside the pool: it carries the replica's LISTEN for
            # good, and the pool (requests) never waits on it, nor it on the pool.
            conn = await self._connect()
            conn.add_termination_listener(self._lost)
            await conn.add_listener(LIVE_CHANNEL, self._on_notify)
            self._conn = conn
            if self._dispatcher is None or self._dispatcher.done():
                self._dispatcher = asyncio.create_task(self._dispatch(), name="live-dispatch")

    def _lost(self, conn: Any) -> None:
        if conn is self._conn:
            log.warning("the live listener's connection closed; the next observer reopens it")
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self._inbox.put_nowait(str(payload))

    async def _dispatch(self) -> None:
        # One reader, in NOTIFY order: an event fetched from `live_events` is not overtaken.
        while True:
            payload = await self._inbox.get()
            try:
                event = json.loads(payload)
                sid = event.get("session_id")
                queues = self.observers.get(sid) if isinstance(sid, str) else None
                if not queues:
                    continue
                if "ref" in event:
                    event = await live_events_db.get_live_events_row(
                        self.pool, event_id=int(event["ref"]), session_id=UUID(sid))
                    if event is None:
                        log.warning("live event %s of %s is gone", payload, sid)
                        continue
                for queue in list(queues):
                    if queue.full():
                        log.warning("an observer of %s is too slow: event dropped for it", sid)
                        continue
                    queue.put_nowait(event)
            except Exception:  # one bad payload must not stop the replica's fan-out
                log.exception("live event %r", payload[:200])

    async def aclose(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(LIVE_CHANNEL, self._on_notify)
            with contextlib.suppress(Exception):
                await conn.close()
