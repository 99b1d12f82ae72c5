"""A pool of pre-warmed `VoiceSession` actors, so a call is answered without the ≈1 s an
actor takes to start (and the seconds its models take to load).

    pool = VoiceActorPool(size=2)
    actor = await pool.acquire()     # warm if one is idle, else a new one (cold)
    ...
    await pool.release(actor)        # reset and back to the pool, or retired

The pool refills itself in the background after every `acquire`. An actor that has served
`calls_per_actor` calls is retired, so whatever a call leaves behind cannot pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aico.settings import VoiceSettings, get_settings

log = logging.getLogger("aico.actors.pool")


class VoiceActorPool:
    def __init__(self, *, size: int | None = None, max_restarts: int | None = None,
                 calls_per_actor: int | None = None,
                 settings: VoiceSettings | None = None,
                 actor_options: dict[str, Any] | None = None) -> None:
        settings = settings or get_settings().voice
        self.size = settings.pool_size if size is None else size
        self.max_restarts = settings.max_restarts if max_restarts is None else max_restarts
        self.calls_per_actor = calls_per_actor or settings.calls_per_actor
        # Ray options of every actor: its node, its `aico_calls` unit (actors.call_placement).
        self.actor_options = actor_options or {}
        self._idle: list[Any] = []
        self._starting = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = {"warm": 0, "cold": 0, "retired": 0}
        self.last_error: BaseException | None = None
        self._sampled = False  # its idle actors are read into aico_voice_actors_idle

    def _new_actor(self) -> Any:
        from actors.voice_session import VoiceSession

        return VoiceSession.options(  # type: ignore[attr-defined]  # @ray.remote: an ActorClass
            max_restarts=self.max_restarts, **self.actor_options).remote()

    async def _start_one(self) -> Any:
        actor = self._new_actor()
        await actor.warm.remote()
        return actor

    def fill(self) -> None:
        """Start actors in the background until `size` are idle or starting."""
        if not self._sampled:
            from actors.call_metrics import node_label
            from aico import metrics

            self._sampled = True
            metrics.sample_idle_actors(node_label(), lambda: float(len(self._idle)))
        while len(self._idle) + self._starting < self.size:
            self._starting += 1
            task = asyncio.get_running_loop().create_task(self._add())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _add(self) -> None:
        try:
            self._idle.append(await self._start_one())
        except Exception as err:
            log.exception("could not start a voice actor")
            self.last_error = err
        finally:
            self._starting -= 1

    async def wait_warm(self, timeout_s: float = 120.0) -> None:
        """Until the pool is full (startup, benchmarks)."""
        self.fill()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self._idle) < self.size and asyncio.get_running_loop().time() < deadline:
            if self.last_error is not None:
                raise self.last_error
            await asyncio.sleep(0.05)

    async def acquire(self) -> Any:
        if self._idle:
            actor = self._idle.pop()
            self.stats["warm"] += 1
        else:
            actor = await self._start_one()
            self.stats["cold"] += 1
        self.fill()
        return actor

    async def release(self, actor: Any) -> None:
        try:
            calls = await actor.reset.remote()
        except Exception:  # noqa: BLE001 - a dead actor is simply dropped
            return
        if calls < self.calls_per_actor and len(self._idle) < self.size:
            self._idle.append(actor)
        else:
            self.stats["retired"] += 1
            self._kill(actor)

    def _kill(self, actor: Any) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for actor in self._idle:
            self._kill(actor)
        self._idle.clear()
