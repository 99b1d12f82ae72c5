"""Where calls run on a Ray cluster: one `CallSupervisor` per node, and `CallPlacement`, the API
replica's view of them all.

    placement = CallPlacement(settings.voice)      # in an API replica (or `aico up`, to warm)
    actor = await placement.acquire(session_id)    # a warm VoiceSession on the node with room
    ...
    await placement.release(actor, session_id)

* **Ownership.** A supervisor is a detached, named actor pinned to its node
  (`aico-calls-<node id>`); it creates that node's `VoiceSession` actors, so it owns them. An
  API replica only borrows a handle: when the replica (or its node) dies, calls whose actors
  live elsewhere keep running, and a call whose transport is gone is hung up by its
  supervisor once its caller has been silent for `voice.orphan_after_s` (the session's lease
  lapses and the sweeper closes it with a reason).
* **Placement.** When the cluster declares the node resource `voice.call_resource`
  (`aico_calls`: cluster.yaml's call workers, `aico up`'s local Ray), every actor, warm or
  live, holds `voice.calls_per_process` units of it (one per call it can carry), so a node
  takes at most that many calls whatever the setting; a call goes to the node with the most
  room left. Without the resource (a bare `ray start`, the tests' Ray), every alive node is
  used and the call goes to the node with the fewest live calls.
* **Warm pool per node.** Each supervisor keeps `voice.pool_size` call slots warm (database
  pool, VAD, the default models loaded and run once), so the first call is answered like the
  tenth; a call takes a slot in the actor already carrying the most calls (actors.pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.pool import VoiceActorPool
from aico.errors import AicoError
from aico.settings import VoiceSettings, get_settings

log = logging.getLogger("aico.actors.call_placement")

NAMESPACE = "aico"


class NoCallCapacity(AicoError):
    """No alive node has room for another call (every `aico_calls` unit is taken)."""

    status, code = 503, "no_call_capacity"


def supervisor_name(node_id: str) -> str:
    return f"aico-calls-{node_id[:16]}"


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1000)  # type: ignore[call-overload]
class CallSupervisor:
    """One node's call actors: its warm pool, the calls it carries, and their clean-up."""

    def __init__(self, node_id: str, capacity: int | None, settings: VoiceSettings) -> None:
        self.node_id = node_id
        self.capacity = capacity
        self.settings = settings
        options: dict[str, Any] = {"scheduling_strategy": NodeAffinitySchedulingStrategy(
            node_id, soft=False)}
        if capacity is not None:
            options["resources"] = {settings.call_resource: settings.calls_per_process}
        self.pool = VoiceActorPool(settings=settings, actor_options=options)
        self.live: dict[str, tuple[Any, float]] = {}  # session id -> (its actor, acquired at)
        self._reaper: asyncio.Task[None] | None = None

    def _start(self) -> None:
        if self._reaper is None:
            from actors.metrics_hub import start_metrics_push

            start_metrics_push(get_settings().observability.metrics_push_s)
            self._reaper = asyncio.get_running_loop().create_task(self._reap_orphans())
            self.pool.fill()

    async def wait_warm(self, timeout_s: float = 300.0) -> int:
        self._start()
        await self.pool.wait_warm(timeout_s)
        return len(self.pool.idle)

    async def load(self) -> dict[str, Any]:
        """Live calls, and warm free call slots (`idle`) and actors starting."""
        self._start()
        return {"node_id": self.node_id, "capacity": self.capacity, "live": len(self.live),
                "idle": self.pool.free_slots(), "starting": self.pool._starting}

    async def actor_rss_bytes(self) -> list[int]:
        """The resident memory of each of this node's call actors, live and warm."""
        actors = self.pool.actors
        sizes = await asyncio.gather(*(a.rss_bytes.remote() for a in actors),
                                     return_exceptions=True)
        return [n for n in sizes if isinstance(n, int)]

    async def acquire(self, session_id: str) -> Any:
        self._start()
        if self.capacity is not None and len(self.live) >= self.capacity:
            raise NoCallCapacity(f"node {self.node_id[:12]} carries {len(self.live)} calls,"
                                 f" its {self.settings.call_resource}")
        actor = await self.pool.acquire(session_id)
        self.live[session_id] = (actor, time.monotonic())
        return actor

    async def find(self, session_id: str) -> Any:
        """The live actor that carries `session_id`'s call on this node, if any."""
        entry = self.live.get(session_id)
        return entry[0] if entry is not None else None

    async def release(self, actor: Any, session_id: str) -> None:
        """`session_id`'s call has ended: its slot in `actor` is free (the actor's other
        calls carry on)."""
        if self.live.pop(session_id, None) is not None:
            await self.pool.release(actor, session_id)

    async def retire(self) -> int:
        """Stop this node's warm actors (before the supervisor itself is killed); returns the
        number of calls still live, which are left to finish."""
        await self.pool.aclose()
        return len(self.live)

    async def _reap_orphans(self) -> None:
        """Hang up calls whose transport went away with its API replica (no caller audio, no
        reader for `orphan_after_s`), and take their slots back; the other calls of their
        actors carry on."""
        every = max(1.0, self.settings.orphan_after_s / 4)
        while True:
            await asyncio.sleep(every)
            for session_id, (actor, _) in list(self.live.items()):
                try:
                    quiet = await actor.quiet_for_s.remote(session_id)
                except ray.exceptions.ActorDiedError:
                    self.live.pop(session_id, None)  # gone for good: its slot is free again
                    await self.pool.release(actor, session_id)
                    continue
                except ray.exceptions.RayError as err:  # restarting: look again next round
                    log.debug("call %s: %s", session_id, err)
                    continue
                if quiet < self.settings.orphan_after_s:
                    continue
                log.warning("call %s has had no transport for %.0f s: hanging up",
                            session_id, quiet)
                with contextlib.suppress(Exception):
                    await actor.hang_up.remote(session_id, "transport_lost")
                await self.release(actor, session_id)


def _call_nodes(resource: str) -> dict[str, int | None]:
    """Alive nodes that take calls, with their capacity (None: the resource is not in use)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    declared = any(n["Resources"].get(resource) for n in alive)
    return {n["NodeID"]: (int(n["Resources"].get(resource, 0)) if declared else None)
            for n in alive if not declared or n["Resources"].get(resource, 0) >= 1}


class CallPlacement:
    """An API replica's pool of calls over every node's supervisor (VoiceActorPool's interface:
    `acquire`, `release`, `fill`, `wait_warm`, `aclose`, `stats`)."""

    def __init__(self, settings: VoiceSettings | None = None, *,
                 refresh_every_s: float = 10.0) -> None:
        self.settings = settings or get_settings().voice
        self.refresh_every_s = refresh_every_s
        self.supervisors: dict[str, Any] = {}  # node id -> supervisor handle
        self._refreshed = 0.0
        self._owner: dict[str, Any] = {}  # session id -> the supervisor of its call
        # Calls this replica is placing on each node right now: a burst of calls placed at once
        # reads the same loads, and would all go to the one node with the most room.
        self._placing: dict[str, int] = {}
        self.stats = {"acquired": 0, "released": 0}

    def _refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._refreshed < self.refresh_every_s:
            return
        nodes = _call_nodes(self.settings.call_resource)
        for node_id, capacity in nodes.items():
            if node_id not in self.supervisors:
                self.supervisors[node_id] = CallSupervisor.options(  # type: ignore[attr-defined]
                    name=supervisor_name(node_id), namespace=NAMESPACE, lifetime="detached",
                    get_if_exists=True, scheduling_strategy=NodeAffinitySchedulingStrategy(
                        node_id, soft=False)).remote(node_id, capacity, self.settings)
        for node_id in set(self.supervisors) - set(nodes):
            del self.supervisors[node_id]  # a dead node: its supervisor died with it
        self._refreshed = time.monotonic()

    def fill(self) -> None:
        """Every node's supervisor exists and is filling its warm pool (not waited for)."""
        self._refresh()
        for supervisor in self.supervisors.values():
            supervisor.load.remote()

    async def wait_warm(self, timeout_s: float = 300.0) -> dict[str, int]:
        """Until every node's warm pool is full (`aico up`, benchmarks): warm actors by node."""
        self._refresh(force=True)
        ids = list(self.supervisors)
        warm = await asyncio.wait_for(asyncio.gather(
            *(self.supervisors[n].wait_warm.remote(timeout_s) for n in ids)), timeout_s + 10)
        return dict(zip(ids, warm, strict=True))

    async def loads(self) -> list[dict[str, Any]]:
        self._refresh()
        results = await asyncio.gather(*(s.load.remote() for s in self.supervisors.values()),
                                       return_exceptions=True)
        return [r for r in results if isinstance(r, dict)]

    async def actor_rss_bytes(self) -> list[int]:
        sizes = await asyncio.gather(*(s.actor_rss_bytes.remote()
                                       for s in self.supervisors.values()),
                                     return_exceptions=True)
        return [n for per_node in sizes if isinstance(per_node, list) for n in per_node]

    async def find(self, session_id: str) -> Any:
        """The actor already carrying `session_id`'s call (its transport went away with another
        replica, and the caller reconnected here), or None."""
        self._refresh()
        found = await asyncio.gather(*(s.find.remote(session_id)
                                       for s in self.supervisors.values()),
                                     return_exceptions=True)
        for node_id, actor in zip(list(self.supervisors), found, strict=True):
            if actor is not None and not isinstance(actor, BaseException):
                self._owner[session_id] = self.supervisors[node_id]
                return actor
        return None

    async def find_or_acquire(self, session_id: str) -> tuple[Any, bool]:
        """`find`, else `acquire`, with the nodes' loads asked in the same round as `find`
        (one round trip fewer before a new call's greeting). Returns (actor, found)."""
        found, loads = await asyncio.gather(self.find(session_id), self.loads())
        if found is not None:
            return found, True
        return await self.acquire(session_id, loads=loads), False

    async def acquire(self, session_id: str, *,
                      loads: list[dict[str, Any]] | None = None) -> Any:
        if loads is None:
            loads = await self.loads()
        if not loads:
            self._refresh(force=True)
            loads = await self.loads()

        def room(load: dict[str, Any]) -> tuple[int, int]:
            """Calls the node can still take (or fewer live calls first), then warm slots."""
            live = load["live"] + self._placing.get(load["node_id"], 0)
            if load["capacity"] is None:
                return (-live, load["idle"])
            return (load["capacity"] - live, load["idle"])

        for load in sorted(loads, key=room, reverse=True):
            if load["capacity"] is not None and room(load)[0] <= 0:
                continue
            node_id = load["node_id"]
            supervisor = self.supervisors.get(node_id)
            if supervisor is None:
                continue
            self._placing[node_id] = self._placing.get(node_id, 0) + 1
            try:
                actor = await supervisor.acquire.remote(session_id)
            except (NoCallCapacity, ray.exceptions.RayError) as err:
                log.warning("node %s could not take a call: %s", node_id[:12], err)
                continue
            finally:
                self._placing[node_id] -= 1
            self._owner[session_id] = supervisor
            self.stats["acquired"] += 1
            return actor
        raise NoCallCapacity("no node has room for another call: add call workers or raise"
                             f" their {self.settings.call_resource}")

    async def release(self, actor: Any, session_id: str) -> None:
        supervisor = self._owner.pop(session_id, None)
        # A call this replica did not start (it reattached it): its supervisor is one of all.
        targets = [supervisor] if supervisor is not None else list(self.supervisors.values())
        self.stats["released"] += 1
        await asyncio.gather(*(s.release.remote(actor, session_id) for s in targets),
                             return_exceptions=True)  # a node gone: nothing to give back

    async def aclose(self) -> None:
        """The supervisors and their calls outlive this replica: nothing to stop here."""
