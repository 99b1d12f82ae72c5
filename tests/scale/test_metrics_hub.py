"""Metrics recorded in other Ray processes reach `/metrics`: a process pushes its cumulative
store to the cluster's hub, the API process sums the hub's snapshots with its own; when a
process is gone its counters stay and its gauges (live calls) lapse."""

from __future__ import annotations

import time
from typing import Any

import ray
from waiting import until

from actors.metrics_hub import SOURCE, MetricsHub, cluster_snapshot
from aico import metrics


@ray.remote(num_cpus=0)
class CallWorker:
    """Stands in for a voice actor: records one answered turn and a live call, and pushes."""

    async def answer_one_turn(self, node: str, v2v_ms: int) -> str:
        from actors.metrics_hub import SOURCE, start_metrics_push

        metrics.count_live_call(node, 1)
        metrics.record_turn({"voice_to_voice_ms": v2v_ms, "stt_final_ms": 80}, node=node)
        await start_metrics_push(every_s=60).push_now()
        return SOURCE


async def test_a_turn_measured_in_another_process_is_in_the_cluster_metrics(ray_cluster):
    node = f"n{time.time_ns()}"
    worker = CallWorker.remote()
    source = await worker.answer_one_turn.remote(node, 1300)
    assert source != SOURCE  # measured in another process

    text = metrics.render(await cluster_snapshot()).decode()
    assert f'aico_voice_turns_total{{node="{node}"}} 1.0' in text
    assert f'aico_live_calls{{node="{node}"}} 1.0' in text
    ray.kill(worker)


async def test_a_gone_process_keeps_its_counts_and_loses_its_gauges(ray_cluster):
    hub = MetricsHub.remote(gauge_ttl_s=0.5)  # its own hub, with a short gauge lifetime
    store = metrics.MetricsStore()
    store.inc("aico_live_calls", ("n1",))
    store.observe("aico_voice_to_voice_seconds", (), 0.9)
    await hub.push.remote("worker-1", store.snapshot())

    fresh = metrics.merge(await hub.snapshots.remote())
    assert fresh["aico_live_calls"] == {("n1",): 1.0}

    async def stale() -> Any:
        merged = metrics.merge(await hub.snapshots.remote())
        return merged if not merged["aico_live_calls"] else None

    merged = await until(stale, timeout=30)
    text = metrics.render(merged).decode()
    assert 'aico_voice_to_voice_seconds_bucket{le="1.0"} 1.0' in text
    assert 'aico_voice_to_voice_seconds_bucket{le="0.75"} 0.0' in text
    assert "aico_voice_to_voice_seconds_count 1.0" in text
    # The process itself is excluded when it asks (its own store is read fresh instead).
    assert await hub.snapshots.remote(exclude="worker-1") == []
    ray.kill(hub)


def test_merged_histograms_sum_bucket_by_bucket() -> None:
    a, b = metrics.MetricsStore(), metrics.MetricsStore()
    for v in (0.3, 1.1):
        a.observe("aico_voice_to_voice_seconds", (), v)
    b.observe("aico_voice_to_voice_seconds", (), 30.0)  # past the last bound: +Inf only
    text = metrics.render(metrics.merge([a.snapshot(), b.snapshot()])).decode()
    assert 'aico_voice_to_voice_seconds_bucket{le="0.5"} 1.0' in text
    assert 'aico_voice_to_voice_seconds_bucket{le="1.25"} 2.0' in text
    assert 'aico_voice_to_voice_seconds_bucket{le="20.0"} 2.0' in text
    assert 'aico_voice_to_voice_seconds_bucket{le="+Inf"} 3.0' in text
    assert "aico_voice_to_voice_seconds_sum 31.4" in text


