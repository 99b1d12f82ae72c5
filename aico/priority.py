"""Background work of a process at idle CPU priority, below the live calls beside it.

Two users: a spare call actor warming up (actors/pool.py refills the pool as calls take its
actors; each new process imports the pipeline, loads its models and opens its connections,
≈1.5 s of CPU, at the moment calls are live: with eight callers on two cores the refill beside
their first turns doubled their p95), and the LLM replica reading prompts ahead
(serve_apps/models/llm.py). While the work runs, the process's threads are scheduled
SCHED_IDLE (they run when a core would otherwise idle; a nice value would not do: Ray starts
its workers at nice 15, four steps from the floor), and when it is done, or a call needs the
process, they are put back to the normal policy at the nice value they had.

Linux schedules threads, not processes: every thread of the process is moved, and every thread
it has when it is restored (those started meanwhile inherited the idle policy) is moved back.
Leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE that allows the thread's nice value;
where neither is there the work runs at normal priority, since a process left idle would be
far worse.

    low = LowPriority(what="a spare voice actor's warm-up")
    low.lower()      # False where it could not be undone later: nothing changed
    ...              # the work
    low.restore()    # idempotent
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("aico.priority")

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
    def __init__(self, what: str) -> None:
        self.what = what  # for the log
        self.lowered = False

    def lower(self) -> bool:
        if self.lowered:
            return True
        if not can_restore():
            log.info("%s runs at normal priority: idle priority could not be left again here"
                     " (no CAP_SYS_NICE, RLIMIT_NICE)", self.what)
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
