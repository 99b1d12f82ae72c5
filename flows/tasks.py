"""The executor as a Ray task: a streaming generator that yields actions as `step` produces them.

    from flows.tasks import step_task
    for ref in step_task.remote(dsn, session_id, event, settings=settings):
        action = ray.get(ref)      # Say / SayChunk / Listen / ... in order, as they are produced

    # or, from async code (the voice actor):
    async for ref in step_task.remote(dsn, session_id, event):
        action = await ref

Each worker process keeps one event loop (on a daemon thread) and one small asyncpg pool per
DSN, so a task costs a Ray round trip plus the step itself (see bench/executor.py for both
figures; in-process `flows.executor.step` is the cheaper call when the caller already has a
pool, as the API does).

A worker that dies mid-step leaves the session at its last commit: re-deliver the same event
(same `event_id`) and the step is either replayed (it had committed) or run afresh (it had not);
a pending LLM reply is generated again. The task sets `max_retries=0` by default because the
caller, not Ray, should decide whether to re-deliver: items a dead attempt already yielded
would otherwise be dropped from a rerun whose LLM reply differs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import asyncpg
import ray

from aico.settings import Settings
from flows.events import Action, InboundEvent

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_pools: dict[str, asyncpg.Pool] = {}


def _worker_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="aico-executor-loop",
                             daemon=True).start()
    return _loop


async def _pool(dsn: str) -> asyncpg.Pool:
    pool = _pools.get(dsn)
    if pool is None:
        from db.pool import create_pool

        pool = _pools[dsn] = await create_pool(dsn, min_size=1, max_size=8)
    return pool


async def _actions(dsn: str, session_id: str, event: InboundEvent, settings: Settings | None,
                   open_llm: Any) -> AsyncIterator[Action]:
    from flows.executor import step

    pool = await _pool(dsn)
    async for action in step(pool, session_id, event, settings=settings, open_llm=open_llm):
        yield action


async def _next(stream: AsyncIterator[Action]) -> tuple[bool, Any]:
    # (done, action): Ray ships this function by value, so a module-level sentinel would not
    # be the same object on both sides of the comparison.
    try:
        return False, await anext(stream)
    except StopAsyncIteration:
        return True, None


@ray.remote(num_returns="streaming", max_retries=0, num_cpus=0)
def step_task(dsn: str, session_id: UUID | str, event: InboundEvent, *,
              settings: Settings | None = None, open_llm: Any = None) -> Iterator[Action]:
    """`flows.executor.step` in a Ray worker; yields each action as soon as it exists."""
    loop = _worker_loop()
    stream = _actions(dsn, str(session_id), event, settings, open_llm)
    try:
        while True:
            done, action = asyncio.run_coroutine_threadsafe(_next(stream), loop).result()
            if done:
                return
            yield action
    finally:
        # The consumer went away (barge-in) or the step failed: close the stream on its loop.
        asyncio.run_coroutine_threadsafe(stream.aclose(), loop).result()
