"""An operator watches calls: Prometheus scrapes `GET /metrics` and sees the call live and its
turn's voice-to-voice latency in the bucket of the figure stored with the session; with traces
on, the turn's spans (transport → STT → executor → LLM → TTS) come out in order, in the
session's trace, with the stored durations. Who may scrape: the scrape token or an admin."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_voice_call import voice_session
from voice_api import wait_status
from voice_call_client import CallClient, agent_lines
from voice_flows import GREETING, HOURS, bakery_flow

from aico.settings import ObservabilitySettings
from aico.tracing import configure_tracing

SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')


def scrape(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            out[(match[1], match[2] or "")] = float(match[3])
    return out


async def metrics_now(client: Any) -> dict[tuple[str, str], float]:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return scrape(r.text)


def v2v_buckets(samples: dict[tuple[str, str], float]) -> dict[float, float]:
    return {float(re.search(r'le="([^"]+)"', labels)[1]): value  # type: ignore[index]
            for (name, labels), value in samples.items()
            if name == "aico_voice_to_voice_seconds_bucket"}


@pytest.fixture
def spans() -> Any:
    exporter = InMemorySpanExporter()
    configure_tracing(ObservabilitySettings(traces="console"), exporter=exporter)
    yield exporter
    configure_tracing(ObservabilitySettings())  # off again, as the settings default


async def test_metrics_show_the_live_call_and_its_turn_and_the_trace_has_its_spans(
        api, voice_server, voices, spans):
    before = await metrics_now(api)
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=120)
        during = await metrics_now(api)
        assert during[("aico_live_calls", 'node="local"')] >= 1
        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
        assert agent_lines(call) == [GREETING, HOURS]
    record = await wait_status(api, session_id, "ended")
    turns = [t for t in record["metrics"]["turns"] if t.get("voice_to_voice_ms") is not None]
    assert len(turns) == 1
    v2v_s = turns[0]["voice_to_voice_ms"] / 1000

    # /metrics: the turn counted once, its latency in the first bucket that holds the stored
    # figure (the histogram is cumulative: every bucket from there up grew by one).
    after = await metrics_now(api)
    key = ("aico_voice_turns_total", 'node="local"')
    assert after[key] - before.get(key, 0.0) == 1
    old, new = v2v_buckets(before), v2v_buckets(after)
    grew = {le for le, n in new.items() if n - old.get(le, 0.0) == 1}
    assert grew == {le for le in new if le >= v2v_s}, (v2v_s, grew)
    assert after[("aico_voice_to_voice_seconds_count", "")] \
        - before.get(("aico_voice_to_voice_seconds_count", ""), 0.0) == 1
    # The provider that spoke the answer, by kind: its time to first audio was measured.
    tts = ("aico_provider_request_seconds_count",
           'operation="synthesize_first_audio",provider="piper"')
    assert after[tts] > before.get(tts, 0.0)
    steps = sum(v for (n, _), v in after.items() if n == "aico_executor_steps_total")
    assert steps > sum(v for (n, _), v in before.items() if n == "aico_executor_steps_total")
    # The call is over: it is no longer live (another test's call may be).
    assert after[("aico_live_calls", 'node="local"')] < during[("aico_live_calls", 'node="local"')]

    # The trace: one turn in the session's trace, children in pipeline order, with the
    # durations stored in sessions.metrics.
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == "turn"
             and s.attributes["aico.session_id"] == str(session_id)]
    assert len(roots) == 1
    root = roots[0]
    assert root.context.trace_id == session_id.int
    children = sorted((s for s in finished if s.parent is not None
                       and s.parent.span_id == root.context.span_id),
                      key=lambda s: (s.start_time, s.end_time))
    assert [s.name for s in children] == [
        "transport.caller_audio", "end_of_turn", "stt", "executor", "llm", "tts",
        "transport.send"] or [s.name for s in children] == [
        "transport.caller_audio", "stt", "end_of_turn", "executor", "llm", "tts",
        "transport.send"]
    by_name = {s.name: s for s in children}
    turn = turns[0]
    assert root.end_time - by_name["transport.caller_audio"].end_time \
        == pytest.approx(turn["voice_to_voice_ms"] * 1e6, abs=2)
    assert by_name["stt"].end_time - by_name["stt"].start_time \
        == pytest.approx(turn["stt_final_ms"] * 1e6, abs=2)
    assert by_name["tts"].end_time - by_name["tts"].start_time \
        == pytest.approx(turn["tts_ttfb_ms"] * 1e6, abs=2)
    for s in children:
        assert root.start_time <= s.start_time <= s.end_time <= root.end_time


async def test_only_the_scrape_token_or_an_admin_reads_metrics(app, anon, make_org,
                                                                monkeypatch):
    assert (await anon.get("/metrics")).status_code == 401
    viewer = await make_org(role="viewer")
    r = await viewer.client.get("/metrics")
    assert r.status_code == 403 and "admin" in r.json()["message"]
    admin = await make_org(role="admin")
    assert (await admin.client.get("/metrics")).status_code == 200

    state = app.state.aico
    token = "scrape-" + str(time.time_ns())
    monkeypatch.setattr(state, "settings", state.settings.model_copy(
        update={"observability": ObservabilitySettings(metrics_token=token)}))
    r = await anon.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and "aico_voice_to_voice_seconds" in r.text
    r = await anon.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401
