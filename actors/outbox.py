"""Reading a queue until something else finishes: the one "race a queue against an event" loop
that the call's outbound stream, the actor's batches and the live observers share.

    async for batch in items_until(outbox, pipeline.ended.wait()):
        ...   # every item put before `done` completed is delivered, in order, then it stops
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def items_until(queue: asyncio.Queue[T], done: Awaitable[Any]) -> AsyncIterator[list[T]]:
    """Batches of what arrives on `queue` (each batch: whatever piled up meanwhile) until `done`
    completes; what is still queued then comes as one last batch. `done` is cancelled when the
    reader stops early."""
    stop = asyncio.ensure_future(done)
    try:
        while True:
            if stop.done():
                rest = _drain(queue)
                if rest:
                    yield rest
                return
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
            try:
                first = await getter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the reader itself is being cancelled
                continue  # the queue keeps an item a cancelled get did not take
            yield [first, *_drain(queue)]
    finally:
        stop.cancel()


def _drain(queue: asyncio.Queue[T]) -> list[T]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
