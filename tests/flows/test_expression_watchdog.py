"""The time limit on templates and conditions stops the evaluation and nothing else: the
interruption never reaches the code that asked for the evaluation, even when the evaluation
ends in the same instant the limit passes (a late interruption once broke a voice actor's event
loop under load)."""

from __future__ import annotations

import threading
import time

import pytest

from flows.expression_bounds import ExpressionTimeout
from flows.expressions import evaluate, render

LOOP = "{% for a in items %}{{ a }}{% endfor %}"
SPIN = ("{% for a in items %}{% for b in items %}{% for c in items %}"
        "{% endfor %}{% endfor %}{% endfor %}done")


def test_a_spinning_template_is_stopped_and_the_caller_carries_on_untouched():
    items = list(range(1000))
    for limit in (0.01, 0.02, 0.03, 0.05):
        with pytest.raises(ExpressionTimeout, match="took longer than"):
            render(SPIN, {"items": items}, time_limit_s=limit)
    # Plain Python work in the caller's thread afterwards sees no stray interruption.
    deadline = time.monotonic() + 0.3
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 0


def test_evaluations_that_end_as_their_limit_passes_never_interrupt_the_caller():
    # Limits about as long as the evaluations themselves: the watchdog's deadline and the
    # evaluation's end race, over and over, on several calling threads at once.
    failures: list[BaseException] = []
    outcomes = {"value": 0, "timeout": 0}
    lock = threading.Lock()

    def caller() -> None:
        try:
            for i in range(150):
                try:
                    items = list(range(200 + i))
                    value = render(LOOP, {"items": items}, time_limit_s=0.002)
                    assert value == "".join(map(str, items))
                    key = "value"
                except ExpressionTimeout:
                    key = "timeout"
                with lock:
                    outcomes[key] += 1
                # the caller's own work between evaluations
                sum(range(2_000))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # A stray interruption that lands while the watchdog's lock is held deadlocks the callers.
    assert not any(thread.is_alive() for thread in threads), "evaluations hung"
    assert failures == []
    assert outcomes["value"] + outcomes["timeout"] == 450


def test_an_error_inside_the_evaluation_reaches_the_caller_as_an_expression_error():
    with pytest.raises(Exception, match="ZeroDivisionError"):
        evaluate("1 / 0", {})
    assert render("{{ name }}!", {"name": "Ada"}) == "Ada!"
