"""Where a call's figures leave the pipeline for operators: metrics and traces per turn.

The pipeline sends each finished turn as a `metrics` event (and stores it in
`sessions.metrics`); `observing(send, ...)` wraps the pipeline's `send` so that the same event
also feeds `/metrics` (aico.metrics.record_turn) and, when configured, OpenTelemetry
(aico.tracing.trace_turn). Both hosts use it: the `VoiceSession` actor and the local host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from aico.metrics import record_turn
from aico.settings import Settings
from aico.tracing import trace_turn

log = logging.getLogger("aico.actors.call_metrics")


def node_label() -> str:
    """The Ray node this process runs on (its id's first 12 hex digits), or `local`."""
    import ray

    if ray.is_initialized():
        return str(ray.get_runtime_context().get_node_id())[:12]
    return "local"


def observing(send: Callable[[Any], None], *, session_id: UUID | str, node: str,
              settings: Settings) -> Callable[[Any], None]:
    def observed(item: Any) -> None:
        if isinstance(item, dict) and item.get("type") == "metrics" \
                and isinstance(item.get("turn"), dict):
            try:
                record_turn(item["turn"], node=node)
                trace_turn(settings.observability, item["turn"], session_id=session_id)
            except Exception:  # figures for operators must never break a call
                log.exception("session %s: could not record a turn's metrics", session_id)
        send(item)

    return observed
