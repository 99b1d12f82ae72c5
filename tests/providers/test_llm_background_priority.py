"""The LLM replica reads prompts ahead at idle CPU priority and serves requests at its normal
one (serve_apps/models/llm.py `BackgroundReading`), on this process's own threads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from aico.priority import can_restore
from serve_apps.models.llm import BackgroundReading

pytestmark = pytest.mark.skipif(
    not can_restore(), reason="this machine does not let a thread leave SCHED_IDLE again "
    "(no CAP_SYS_NICE or RLIMIT_NICE): the LLM reads ahead at normal priority")


def policies() -> set[int]:
    out = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            out.add(os.sched_getscheduler(int(task.name)))
        except OSError:  # ended
            continue
    return out


def test_reading_ahead_runs_idle_until_a_request_comes_and_ends_at_normal_priority():
    background = BackgroundReading()
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    assert policies() == {os.SCHED_OTHER}
    with background:
        assert policies() == {os.SCHED_IDLE}
        with background:  # a second reading (another flow published) shares the lowering
            assert policies() == {os.SCHED_IDLE}
        assert policies() == {os.SCHED_IDLE}
        with background.serving():
            assert policies() == {os.SCHED_OTHER}  # a request is served at normal priority
            with background:  # reading that starts during a request does not slow it
                assert policies() == {os.SCHED_OTHER}
        assert policies() == {os.SCHED_IDLE}  # the request is done: the reading goes on idle
    assert policies() == {os.SCHED_OTHER}
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice


def test_requests_on_other_threads_keep_the_replica_at_normal_priority():
    background = BackgroundReading()
    started, done = threading.Event(), threading.Event()

    def request() -> None:
        with background.serving():
            started.set()
            done.wait(10)

    worker = threading.Thread(target=request)
    worker.start()
    try:
        assert started.wait(10)
        with background:
            assert policies() == {os.SCHED_OTHER}
            done.set()
            worker.join(10)
            assert policies() == {os.SCHED_IDLE}
    finally:
        done.set()
        worker.join(10)
    assert policies() == {os.SCHED_OTHER}
