"""A pool of pre-warmed `VoiceSession` actors, so a call is answered without the ≈1 s an
actor takes to start (and the seconds its models take to load).

    pool = VoiceActorPool(size=2)
    actor = await pool.acquire(session_id)   # a free slot: warm if there is one, else a new actor
    ...
    await pool.release(actor, session_id)    # the call's slot is free again, or the actor retired

An actor has `calls_per_process` slots, one per call it carries at once. `acquire` packs: it
fills the actor already carrying the most calls before it takes an idle one, so as few
processes as possible are live. The pool refills itself in the background after every
`acquire` until at least `size` slots are free and warm: every missing actor at once while no
call is live (start-up), one at a time while calls are. A new actor's process costs ≈1 s of CPU
that Ray spends at the calls' priority (aico.priority lowers only what follows); eight
callers on two cores, whose arrival emptied the pool, otherwise wait behind four of those at
once in their first turns. An actor that has served
`calls_per_actor` calls takes no new call and retires once its last call has ended, so
whatever its calls leave behind cannot pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aico.settings import VoiceSettings, get_settings

log = logging.getLogger("aico.actors.pool")


@dataclass
class PooledActor:
    """A warm actor and the calls it carries."""

    actor: Any
    sessions: set[str] = field(default_factory=set)  # the calls it carries now
    served: int = 0  # calls handed to it (or, after a release, as the actor counts them)
    broken: bool = False  # a reset failed: it takes no new call

    @property
    def carrying(self) -> int:
        return len(self.sessions)


def actor_key(actor: Any) -> str:
    return str(actor._actor_id.hex())


class VoiceActorPool:
    def __init__(self, *, size: int | None = None, max_restarts: int | None = None,
                 calls_per_actor: int | None = None, calls_per_process: int | None = None,
                 settings: VoiceSettings | None = None,
                 actor_options: dict[str, Any] | None = None) -> None:
        settings = settings or get_settings().voice
        self.size = settings.pool_size if size is None else size  # free slots kept warm
        self.max_restarts = settings.max_restarts if max_restarts is None else max_restarts
        self.calls_per_actor = calls_per_actor or settings.calls_per_actor
        self.calls_per_process = calls_per_process or settings.calls_per_process
        # Ray options of every actor: its node, its `aico_calls` units (actors.call_placement).
        self.actor_options = actor_options or {}
        self._actors: dict[str, PooledActor] = {}  # warm actors, idle or carrying calls
        self._starting = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.stats = {"warm": 0, "cold": 0, "retired": 0}
        self.last_error: BaseException | None = None
        self._sampled = False  # its idle actors are read into aico_voice_actors_idle

    @property
    def idle(self) -> list[Any]:
        """Warm actors carrying no call."""
        return [e.actor for e in self._actors.values() if e.carrying == 0 and self._open(e)]

    @property
    def actors(self) -> list[Any]:
        """Every actor of the pool, idle or carrying calls."""
        return [e.actor for e in self._actors.values()]

    def free_slots(self) -> int:
        """Calls the pool's warm actors can take now."""
        return sum(self.calls_per_process - e.carrying for e in self._actors.values()
                   if self._open(e))

    def _open(self, entry: PooledActor) -> bool:
        """Whether `entry` takes another call."""
        return (not entry.broken and entry.served < self.calls_per_actor
                and entry.carrying < self.calls_per_process)

    def _new_actor(self) -> Any:
        from actors.voice_session import VoiceSession

        return VoiceSession.options(  # type: ignore[attr-defined]  # @ray.remote: an ActorClass
            max_restarts=self.max_restarts, **self.actor_options).remote()

    async def _start_one(self, *, background: bool = False) -> Any:
        actor = self._new_actor()
        await actor.warm.remote(background)
        return actor

    def fill(self) -> None:
        """Start actors in the background until `size` slots are free or starting (one at a
        time while calls are live)."""
        if not self._sampled:
            from actors.call_metrics import node_label
            from aico import metrics

            self._sampled = True
            metrics.sample_idle_actors(node_label(), lambda: float(len(self.idle)))
        while not self._closed and \
                self.free_slots() + self._starting * self.calls_per_process < self.size:
            if self._starting and any(e.carrying for e in self._actors.values()):
                return  # the one starting calls `fill` again when it is warm
            self._starting += 1
            task = asyncio.get_running_loop().create_task(self._add())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _add(self) -> None:
        try:
            # A spare: while it warms, the live calls beside it keep the CPU (aico.priority).
            actor = await self._start_one(background=True)
            self._actors[actor_key(actor)] = PooledActor(actor)
        except Exception as err:
            log.exception("could not start a voice actor")
            self.last_error = err
            return
        finally:
            self._starting -= 1
        self.fill()  # the next, if calls took more

    async def wait_warm(self, timeout_s: float = 120.0) -> None:
        """Until the pool is full (startup, benchmarks)."""
        self.fill()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.free_slots() < self.size and asyncio.get_running_loop().time() < deadline:
            if self.last_error is not None:
                raise self.last_error
            await asyncio.sleep(0.05)

    async def acquire(self, session_id: str) -> Any:
        """An actor with a free slot for `session_id`'s call: the fullest one that has room."""
        open_ = [e for e in self._actors.values() if self._open(e)]
        if open_:
            entry = max(open_, key=lambda e: e.carrying)
            self.stats["warm"] += 1
        else:
            actor = await self._start_one()
            entry = self._actors[actor_key(actor)] = PooledActor(actor)
            self.stats["cold"] += 1
        entry.sessions.add(session_id)
        entry.served += 1
        self.fill()
        return entry.actor

    async def release(self, actor: Any, session_id: str) -> None:
        """The call `session_id` on `actor` has ended: its slot is free again; the actor retires
        once it carries no call and has served its `calls_per_actor`, or is not needed warm."""
        entry = self._actors.get(actor_key(actor))
        if entry is None or session_id not in entry.sessions:
            return  # released already
        entry.sessions.discard(session_id)
        try:
            entry.served = max(entry.served, await actor.reset.remote(session_id))
        except Exception:  # noqa: BLE001 - a dead actor is simply dropped with its last call
            entry.broken = True
        if entry.carrying > 0:
            return
        if entry.broken:
            del self._actors[actor_key(actor)]
            return
        spare = self.free_slots() - self.calls_per_process  # without this actor
        if entry.served >= self.calls_per_actor or spare >= self.size:
            del self._actors[actor_key(actor)]
            self.stats["retired"] += 1
            self._kill(actor)

    def _kill(self, actor: Any) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for entry in self._actors.values():
            self._kill(entry.actor)
        self._actors.clear()
