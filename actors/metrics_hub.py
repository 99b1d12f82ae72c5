"""One place on the Ray cluster where every process's metrics meet, for the API's `/metrics`.

Prometheus scrapes one API replica, but calls are measured in `VoiceSession` actors on any node
and in every API replica. Each such process keeps its own cumulative `aico.metrics` store and
pushes a snapshot to the `MetricsHub` (a detached, named actor: it outlives the replica that
created it) every `settings.observability.metrics_push_s`; `/metrics` asks the hub for them
all and renders their sum. A process that stops pushing keeps its counters and histograms (they
stay true) and loses its gauges after `gauge_ttl_s` (a dead actor carries no live call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

import ray

from aico import metrics

log = logging.getLogger("aico.actors.metrics_hub")

HUB_NAME = "aico-metrics-hub"
HUB_NAMESPACE = "aico"
SOURCE = f"{socket.gethostname()}:{os.getpid()}"  # this process, as the hub names it


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class MetricsHub:
    def __init__(self, gauge_ttl_s: float = 15.0) -> None:
        self.gauge_ttl_s = gauge_ttl_s
        self._snapshots: dict[str, tuple[float, metrics.Snapshot]] = {}

    def push(self, source: str, snapshot: metrics.Snapshot) -> None:
        self._snapshots[source] = (time.monotonic(), snapshot)

    def snapshots(self, exclude: str | None = None) -> list[metrics.Snapshot]:
        now = time.monotonic()
        out = []
        for source, (at, snap) in self._snapshots.items():
            if source == exclude:
                continue
            out.append(snap if now - at <= self.gauge_ttl_s else metrics.without_gauges(snap))
        return out


_hub: Any = None


def metrics_hub(*, fresh: bool = False) -> Any:
    """The cluster's hub, created by whichever process asks first (the handle is kept)."""
    global _hub
    if _hub is None or fresh:
        _hub = MetricsHub.options(  # type: ignore[attr-defined]  # @ray.remote: an ActorClass
            name=HUB_NAME, namespace=HUB_NAMESPACE, lifetime="detached",
            get_if_exists=True).remote()
    return _hub


class MetricsPusher:
    """Pushes this process's snapshot to the hub every `every_s` while the loop runs."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def push_now(self) -> None:
        await metrics_hub().push.remote(SOURCE, metrics.STORE.snapshot())

    async def _run(self) -> None:
        while True:
            try:
                await self.push_now()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the hub restarts; the next push carries all
                log.debug("metrics push failed: %s", err)
                metrics_hub(fresh=True)
            await asyncio.sleep(self.every_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


_pusher: MetricsPusher | None = None


def start_metrics_push(every_s: float) -> MetricsPusher:
    """This process's pusher (one per process), started on the running loop."""
    global _pusher
    if _pusher is None:
        _pusher = MetricsPusher(every_s)
    _pusher.start()
    return _pusher


async def cluster_snapshot() -> metrics.Snapshot:
    """Every process's metrics summed: this process's own store, fresh, and the hub's others."""
    own = metrics.STORE.snapshot()
    if not ray.is_initialized():
        return own
    try:
        others = await metrics_hub().snapshots.remote(exclude=SOURCE)
    except Exception:  # the hub is restarting: report what this process knows
        log.warning("metrics hub unreachable; /metrics shows this replica only", exc_info=True)
        return own
    return metrics.merge([own, *others])
