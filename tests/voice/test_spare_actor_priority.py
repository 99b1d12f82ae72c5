"""A spare call actor warms up at idle CPU priority and is back at normal priority once warm
(aico/priority.py): the mechanism on this process's threads, then a pool actor on Ray."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from test_actor_restart import PinnedModelsPool

from aico.priority import LowPriority, can_restore

pytestmark = pytest.mark.skipif(
    not can_restore(), reason="this machine does not let a thread leave SCHED_IDLE again "
    "(no CAP_SYS_NICE or RLIMIT_NICE): spares warm at normal priority")


def thread_policies(pid: int | str = "self") -> dict[int, tuple[int, int]]:
    """Every thread's (scheduling policy, nice value)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = (os.sched_getscheduler(int(task.name)),
                                   os.getpriority(os.PRIO_PROCESS, int(task.name)))
        except OSError:  # ended
            continue
    return out


def test_every_thread_is_lowered_and_put_back_even_one_started_meanwhile():
    before = set(thread_policies().values())
    assert {policy for policy, _ in before} == {os.SCHED_OTHER}
    low = LowPriority(what="this test")
    assert low.lower() and low.lowered
    stop = threading.Event()
    late = threading.Thread(target=stop.wait, name="started-while-low")
    late.start()
    try:
        lowered = thread_policies()
        assert late.native_id in lowered
        assert {policy for policy, _ in lowered.values()} == {os.SCHED_IDLE}
        low.restore()
        assert set(thread_policies().values()) == before  # the policy and the nice value
        low.restore()  # again: nothing to do
        assert not low.lowered
    finally:
        stop.set()
        late.join()
        low.restore()


async def test_a_pool_spare_is_at_normal_priority_once_warm(ray_cluster):
    pool = PinnedModelsPool(size=1)
    try:
        await pool.wait_warm(timeout_s=300)
        [actor] = pool.idle
        pid = await actor.warm.remote(True)  # its pid; asked as a spare: nothing else changes
        assert pid != os.getpid()
        policies = thread_policies(pid)
        assert policies and {policy for policy, _ in policies.values()} == {os.SCHED_OTHER}
    finally:
        await pool.aclose()
