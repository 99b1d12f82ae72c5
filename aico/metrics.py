"""Operator metrics: what a process records, and how `/metrics` renders them for Prometheus.

Every process that does AICO's work (an API replica, a `VoiceSession` actor, a laptop's single
process) records into its own `MetricsStore` with the `record_*` functions below: a dict update,
no I/O, safe on the hot path. A store is cumulative, so its `snapshot()` can be sent anywhere
and summed with others (`merge`): processes on Ray push theirs to one hub actor
(actors/metrics_hub.py) and the API's `/metrics` renders the sum. A lost push or a restarted hub
costs nothing (the next snapshot carries the totals); a dead process's gauges expire at the hub.

| metric | labels | fed by |
| --- | --- | --- |
| `aico_live_calls` | node | a voice actor while it carries a call |
| `aico_voice_turns_total` | node | every answered voice turn (the pipeline's `metrics` event) |
| `aico_voice_to_voice_seconds` | — | the same turns: caller's last voiced audio → first agent audio |
| `aico_turn_stage_seconds` | stage | end_of_turn, stt_final, executor, llm_ttft, ... of those turns |
| `aico_provider_request_seconds` | provider, operation | `providers.policy.call_with_retries` (recognize, embed); LLM `chat_first_token` and TTS `synthesize_first_audio` (to the first chunk) |
| `aico_provider_errors_total` | provider, operation, code | the same, per failed attempt; code `replica_lost`: a model replica died mid-request and it was sent to another (providers/serve_clients.py) |
| `aico_executor_steps_total` | outcome | the executor, per step |
| `aico_executor_step_seconds` | — | the same |
| `aico_queue_depth` | queue | sampled when a snapshot is taken (voice outbox, pending events) |
| `aico_voice_actors_idle` | node | the warm pool of each API replica |
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

Kind = Literal["counter", "gauge", "histogram"]
LabelValues = tuple[str, ...]
Snapshot = dict[str, dict[LabelValues, Any]]

# Voice latency buckets: dense around the 2 s objective so p50/p95 read within 250 ms.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0,
                   7.5, 10.0, 20.0)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The per-turn figures of `sessions.metrics.turns`, in milliseconds, and their stage names.
TURN_STAGES = {"end_of_turn_ms": "end_of_turn", "stt_final_ms": "stt_final",
               "executor_ms": "executor", "llm_ttft_ms": "llm_ttft",
               "llm_first_sentence_ms": "llm_first_sentence", "tts_ttfb_ms": "tts_ttfb",
               "aico_ms": "aico"}


@dataclass(frozen=True)
class MetricSpec:
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


SPECS: dict[str, MetricSpec] = {
    "aico_live_calls": MetricSpec("gauge", "Voice calls carried now, by the node of their actor",
                                  ("node",)),
    "aico_voice_turns": MetricSpec("counter", "Voice turns answered", ("node",)),
    "aico_voice_to_voice_seconds": MetricSpec(
        "histogram", "Caller's last voiced audio to the agent's first audio, per turn",
        buckets=LATENCY_BUCKETS),
    "aico_turn_stage_seconds": MetricSpec(
        "histogram", "One stage of a voice turn (end_of_turn, stt_final, executor, llm_ttft,"
        " llm_first_sentence, tts_ttfb, aico)", ("stage",), LATENCY_BUCKETS),
    "aico_provider_request_seconds": MetricSpec(
        "histogram", "One provider request, retries included", ("provider", "operation"),
        LATENCY_BUCKETS),
    "aico_provider_errors": MetricSpec(
        "counter", "Failed provider attempts, by error code", ("provider", "operation", "code")),
    "aico_executor_steps": MetricSpec("counter", "Flow executor steps, by outcome", ("outcome",)),
    "aico_executor_step_seconds": MetricSpec("histogram", "One flow executor step",
                                             buckets=STEP_BUCKETS),
    "aico_queue_depth": MetricSpec("gauge", "Items waiting in a queue", ("queue",)),
    "aico_voice_actors_idle": MetricSpec("gauge", "Warm voice actors waiting for a call",
                                         ("node",)),
}


class MetricsStore:
    """Cumulative counters and histograms, and gauges, of one process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Snapshot = {name: {} for name in SPECS}
        # Gauges read when a snapshot is taken (a queue's length), by (name, labels).
        self._samplers: dict[tuple[str, LabelValues], Callable[[], float]] = {}

    def inc(self, name: str, labels: LabelValues = (), by: float = 1.0) -> None:
        with self._lock:
            series = self._values[name]
            series[labels] = series.get(labels, 0.0) + by

    def set(self, name: str, labels: LabelValues, value: float) -> None:
        with self._lock:
            self._values[name][labels] = float(value)

    def observe(self, name: str, labels: LabelValues, value: float) -> None:
        buckets = SPECS[name].buckets
        with self._lock:
            series = self._values[name]
            counts = series.get(labels)
            if counts is None:
                counts = series[labels] = [0] * (len(buckets) + 1) + [0.0]
            # Per-bucket (not cumulative) counts; the last bucket is +Inf, then the sum.
            for i, bound in enumerate(buckets):
                if value <= bound:
                    counts[i] += 1
                    break
            else:
                counts[len(buckets)] += 1
            counts[-1] += value

    def sample(self, name: str, labels: LabelValues, read: Callable[[], float] | None) -> None:
        """Read a gauge from `read()` at every snapshot (None stops and clears it)."""
        with self._lock:
            if read is None:
                self._samplers.pop((name, labels), None)
                self._values[name].pop(labels, None)
            else:
                self._samplers[(name, labels)] = read

    def snapshot(self) -> Snapshot:
        for (name, labels), read in list(self._samplers.items()):
            try:
                self.set(name, labels, read())
            except Exception:  # noqa: BLE001 - a sampler of something gone: drop it
                self.sample(name, labels, None)
        with self._lock:
            return {name: {k: list(v) if isinstance(v, list) else v for k, v in series.items()}
                    for name, series in self._values.items()}

    def reset(self) -> None:
        with self._lock:
            self._values = {name: {} for name in SPECS}
            self._samplers.clear()


def without_gauges(snapshot: Snapshot) -> Snapshot:
    """A snapshot's cumulative part (what stays true after its process is gone)."""
    return {name: ({} if SPECS[name].kind == "gauge" else series)
            for name, series in snapshot.items() if name in SPECS}


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of several processes' snapshots."""
    total: Snapshot = {name: {} for name in SPECS}
    for snap in snapshots:
        for name, series in snap.items():
            if name not in SPECS:
                continue
            into = total[name]
            for labels, value in series.items():
                if isinstance(value, list):
                    have = into.get(labels)
                    into[labels] = list(value) if have is None else [
                        a + b for a, b in zip(have, value, strict=True)]
                else:
                    into[labels] = into.get(labels, 0.0) + value
    return total


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        for name, spec in SPECS.items():
            series = self._snapshot.get(name, {})
            family: Any
            if spec.kind == "counter":
                family = CounterMetricFamily(name, spec.help, labels=spec.labels)
                for labels, value in sorted(series.items()):
                    family.add_metric(list(labels), value)
            elif spec.kind == "gauge":
                family = GaugeMetricFamily(name, spec.help, labels=spec.labels)
                for labels, value in sorted(series.items()):
                    family.add_metric(list(labels), value)
            else:
                family = HistogramMetricFamily(name, spec.help, labels=spec.labels)
                for labels, counts in sorted(series.items()):
                    cumulative, running = [], 0
                    for bound, n in zip((*spec.buckets, float("inf")), counts[:-1],
                                        strict=True):
                        running += int(n)
                        cumulative.append((_le(bound), running))
                    family.add_metric(list(labels), cumulative, counts[-1])
            yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def render(snapshot: Snapshot) -> bytes:
    """The Prometheus text exposition of a snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


# --- this process's store and what records into it -------------------------------------------

STORE = MetricsStore()


def record_turn(turn: Mapping[str, Any], *, node: str = "local") -> None:
    """One voice turn's figures (the pipeline's `metrics` event, `sessions.metrics.turns`)."""
    v2v = turn.get("voice_to_voice_ms")
    if v2v is None:
        return  # not answered with audio (interrupted, or the flow ended): no latency to count
    STORE.inc("aico_voice_turns", (node,))
    STORE.observe("aico_voice_to_voice_seconds", (), v2v / 1000)
    for key, stage in TURN_STAGES.items():
        value = turn.get(key)
        if isinstance(value, int | float) and value >= 0:
            STORE.observe("aico_turn_stage_seconds", (stage,), value / 1000)


def record_provider_call(provider: str, operation: str, seconds: float, *,
                         error_code: str | None = None) -> None:
    STORE.observe("aico_provider_request_seconds", (provider or "unknown", operation), seconds)
    if error_code is not None:
        STORE.inc("aico_provider_errors", (provider or "unknown", operation, error_code))


def record_provider_error(provider: str, operation: str, code: str) -> None:
    STORE.inc("aico_provider_errors", (provider or "unknown", operation, code))


def record_executor_step(seconds: float, *, outcome: str) -> None:
    STORE.inc("aico_executor_steps", (outcome,))
    STORE.observe("aico_executor_step_seconds", (), seconds)


def count_live_call(node: str, delta: int) -> None:
    """A call started (+1) or ended (-1) in this process, its pipeline on `node`."""
    STORE.inc("aico_live_calls", (node,), float(delta))


def sample_queue(queue: str, read: Callable[[], float] | None) -> None:
    STORE.sample("aico_queue_depth", (queue,), read)


def sample_idle_actors(node: str, read: Callable[[], float] | None) -> None:
    STORE.sample("aico_voice_actors_idle", (node,), read)
