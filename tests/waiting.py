"""Waiting for a condition another process brings about, without guessing how long it takes.

Imported by name (`from waiting import until`): `tests/` is on the path, as the folder of the
root conftest (pytest's default import mode)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(check: Callable[[], Awaitable[Any]], *, timeout: float = 60.0,
                every_s: float = 0.1) -> Any:
    """`check()`'s first truthy value; fails the test once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(every_s)
