"""Where should an executor step run? One deterministic step (user.turn -> set -> say -> listen,
committed to the embedded PostgreSQL) measured three ways, one session, sequential turns:

- in-process: `flows.executor.step` on the caller's event loop and pool (what the API and the
  voice actors do);
- Ray task: a `num_cpus=0` streaming-generator task per step, its worker keeping a pool;
- Ray actor: a warm `num_cpus=0` executor actor holding a pool, one streaming method call per step.

    .venv/bin/python bench/executor_placement.py [--steps 50]

Prints p50/p95 per form (warm: each form runs 10 unmeasured steps first). The decision it
informed is in CONTRIBUTING.md ("Where the executor runs").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray

from aico.settings import Settings
from db.embedded import start_embedded_postgres
from db.flows import insert_flow, insert_flow_version
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_pool
from db.sessions import insert_session
from flows.document import validate_for_publish
from flows.events import Action, InboundEvent
from flows.executor import step

COUNTER = {
    "name": "bench-counter",
    "variables": {"n": {"type": "integer", "default": 0}},
    "nodes": [{"id": "start", "type": "start"}, {"id": "hear", "type": "listen", "into": "said"},
              {"id": "inc", "type": "set", "assign": {"n": "n + 1"}},
              {"id": "ack", "type": "say", "text": "#{{ n }}: {{ said }}"}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "inc"},
              {"from": "inc", "to": "ack"}, {"from": "ack", "to": "hear"}],
}

_pools: dict[str, Any] = {}


async def _worker_pool(dsn: str) -> Any:
    if dsn not in _pools:
        _pools[dsn] = await create_pool(dsn, min_size=1, max_size=4)
    return _pools[dsn]


@ray.remote(num_cpus=0, num_returns="streaming", max_retries=0)
def step_task(dsn: str, session_id: str, event: InboundEvent, settings: Settings):
    """The Ray task form (as flows/tasks.py had it): a worker-wide loop and pool."""
    loop = _task_loop()

    async def collect() -> list[Action]:
        pool = await _worker_pool(dsn)
        return [a async for a in step(pool, session_id, event, settings=settings)]

    # Ray drives a generator with `send`: a plain loop, not `yield from` a list iterator.
    for action in asyncio.run_coroutine_threadsafe(collect(), loop).result():  # noqa: UP028
        yield action


_loop: asyncio.AbstractEventLoop | None = None


def _task_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        import threading

        _loop = asyncio.new_event_loop()
        threading.Thread(target=_loop.run_forever, daemon=True).start()
    return _loop


@ray.remote(num_cpus=0)
class ExecutorActor:
    """A warm executor: one pool, steps on the actor's own event loop."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings

    @ray.method(num_returns="streaming")
    async def step(self, session_id: str, event: InboundEvent) -> AsyncIterator[Action]:
        pool = await _worker_pool(self.dsn)
        async for action in step(pool, session_id, event, settings=self.settings):
            yield action


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(label: str, one_turn: Callable[[int], Awaitable[None]], steps: int) -> None:
    for i in range(10):
        await one_turn(-i - 1)
    latencies = []
    for i in range(steps):
        started = time.perf_counter()
        await one_turn(i)
        latencies.append(time.perf_counter() - started)
    print(f"{label:<28} steps={steps:<4} p50={statistics.median(latencies) * 1000:7.2f} ms"
          f"  p95={pct(latencies, 0.95) * 1000:7.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aico-bench-") as home:
        Path(home).chmod(0o755)
        pg = start_embedded_postgres(Path(home) / "pg", delete_on_stop=True)
        try:
            await prepare_database(pg.dsn)
            dsn = getattr(pg, "app_dsn", pg.dsn)
            pool = await create_pool(dsn, min_size=2, max_size=8)
            settings = Settings(home=Path(home), database_url=pg.dsn)
            org = await insert_organization(pool, slug="bench", name="bench")
            doc = validate_for_publish(COUNTER).model_dump(by_alias=True, exclude_none=True)
            flow = await insert_flow(pool, org_id=org["id"], name="c", description="",
                                     document=doc)
            async with pool.acquire() as conn:
                version = await insert_flow_version(conn, org_id=org["id"], flow_id=flow["id"],
                                                    document=doc)

            async def new_session() -> str:
                row = await insert_session(pool, org_id=org["id"], flow_id=flow["id"],
                                           flow_version_id=version["id"], channel="chat",
                                           variables={"n": 0})
                async for _ in step(pool, row["id"], InboundEvent.session_started(),
                                    settings=settings):
                    pass
                return str(row["id"])

            sid = await new_session()

            async def in_process(i: int) -> None:
                async for _ in step(pool, sid, InboundEvent.user_turn(f"hi {i}"),
                                    settings=settings):
                    pass

            await measure("in-process step", in_process, args.steps)

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                tsid = await new_session()

                async def as_task(i: int) -> None:
                    async for ref in step_task.remote(dsn, tsid, InboundEvent.user_turn(f"t {i}"),
                                                      settings):
                        await ref

                await measure("Ray task (num_cpus=0)", as_task, args.steps)
                actor = ExecutorActor.remote(dsn, settings)
                asid = await new_session()

                async def on_actor(i: int) -> None:
                    async for ref in actor.step.remote(asid, InboundEvent.user_turn(f"a {i}")):
                        await ref

                await measure("warm actor (num_cpus=0)", on_actor, args.steps)
            finally:
                ray.shutdown()
            await pool.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
