"""The pool refills its spares all at once while no call is live, one at a time while calls
are: a new actor's process start runs at the calls' CPU priority, and several at once beside
callers who just emptied the pool slowed their first turns."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from actors.pool import VoiceActorPool
from aico.settings import VoiceSettings


class FakeActor:
    def __init__(self, n: int) -> None:
        self._actor_id = SimpleNamespace(hex=lambda: f"actor-{n}")


class GatedPool(VoiceActorPool):
    """A pool whose actors start when the test opens their gate; no Ray."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(settings=VoiceSettings(), **kwargs)
        self.gates: list[asyncio.Event] = []
        self.most_starting = 0

    async def _start_one(self, *, background: bool = False) -> Any:
        gate = asyncio.Event()
        self.gates.append(gate)
        n = len(self.gates)
        self.most_starting = max(self.most_starting, self._starting)
        await gate.wait()
        return FakeActor(n)

    def _kill(self, actor: Any) -> None:
        pass

    async def open_gates(self) -> None:
        for gate in self.gates:
            gate.set()
        await asyncio.sleep(0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_start_every_missing_actor_starts_at_once() -> None:
    pool = GatedPool(size=4, calls_per_process=1)
    pool.fill()
    await settle()
    assert len(pool.gates) == 4 and pool.most_starting == 4
    await pool.open_gates()
    await asyncio.wait_for(pool.wait_warm(), 10)
    assert pool.free_slots() == 4
    await pool.aclose()


async def test_beside_live_calls_spares_start_one_at_a_time_until_the_pool_is_full() -> None:
    pool = GatedPool(size=4, calls_per_process=2)
    pool.fill()
    await settle()
    await pool.open_gates()
    await asyncio.wait_for(pool.wait_warm(), 10)
    assert len(pool.gates) == 2 and pool.free_slots() == 4

    for call in range(4):  # four callers take every slot
        await pool.acquire(f"call-{call}")
    await settle()
    # Two actors are missing; one starts.
    assert len(pool.gates) == 3 and pool._starting == 1
    pool.gates[2].set()
    await settle()
    # Warm: the next starts only now.
    assert pool.free_slots() == 2 and len(pool.gates) == 4 and pool._starting == 1
    pool.gates[3].set()
    await settle()
    assert pool.free_slots() == 4 and pool._starting == 0 and len(pool.gates) == 4
    assert pool.most_starting == 2  # only at start-up, with no call live
    await pool.aclose()
