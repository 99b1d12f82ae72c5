"""A spare call actor warms up at idle CPU priority, below the live calls beside it.

The pool refills as calls take its actors (actors/pool.py): each new process imports the
pipeline, loads its models and opens its connections, ≈1.5 s of CPU, at the moment calls are
live. With eight callers on two cores the refill ran beside their first turns and their p95
doubled. While it warms, a spare actor's threads are scheduled SCHED_IDLE (they run when a core
would otherwise idle; a nice value would not do: Ray starts its workers at nice 15, four steps
from the floor), and when it is ready they are put back to the normal policy at the nice value
they had, so the calls it then takes are not slowed.

Linux schedules threads, not processes: every thread of the process is moved, and every thread
it has when it is ready (those started meanwhile inherited the idle policy) is moved back.
Leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE that allows the thread's nice value;
where neither is there the warm-up runs at normal priority, since a call actor left idle would
be far worse.

    low = LowPriority()
    low.lower()      # False where it could not be undone later: nothing changed
    ...              # the warm-up
    low.restore()    # idempotent
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("aico.actors.priority")

_TASKS = "/proc/self/task"


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(_TASKS)]
    except OSError:
        return []


def _set_policy(tid: int, policy: int) -> None:
    os.sched_setscheduler(tid, policy, os.sched_param(0))


def can_restore() -> bool:
    """Whether a thread of this process may leave SCHED_IDLE again (tried on a short-lived
    thread of its own, so nothing else changes)."""
    if not os.path.isdir(_TASKS) or not hasattr(os, "SCHED_IDLE"):
        return False
    allowed: list[bool] = []

    def probe() -> None:
        try:
            _set_policy(0, os.SCHED_IDLE)
            _set_policy(0, os.SCHED_OTHER)
            allowed.append(True)
        except OSError:
            allowed.append(False)

    thread = threading.Thread(target=probe, name="aico-priority-probe")
    thread.start()
    thread.join()
    return allowed == [True]


class LowPriority:
    def __init__(self) -> None:
        self.lowered = False

    def lower(self) -> bool:
        if self.lowered:
            return True
        if not can_restore():
            log.info("a spare voice actor warms at normal priority: idle priority could not be"
                     " left again here (no CAP_SYS_NICE, RLIMIT_NICE)")
            return False
        self.lowered = True
        for tid in _threads():
            try:
                if os.sched_getscheduler(tid) == os.SCHED_OTHER:
                    _set_policy(tid, os.SCHED_IDLE)
            except OSError:  # the thread has ended
                pass
        return True

    def restore(self) -> None:
        if not self.lowered:
            return
        self.lowered = False
        for tid in _threads():
            try:
                if os.sched_getscheduler(tid) == os.SCHED_IDLE:
                    _set_policy(tid, os.SCHED_OTHER)
            except OSError:  # ended meanwhile; or not allowed after all: say so
                if os.path.exists(f"{_TASKS}/{tid}"):
                    log.warning("could not restore thread %d's CPU priority", tid)
