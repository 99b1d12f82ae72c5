"""OpenTelemetry traces of voice sessions: one trace per session, one span tree per turn.

The pipeline already measures every turn (`sessions.metrics.turns`: end-of-turn delay, STT
final, executor, LLM first token and first sentence, TTS first byte, voice-to-voice); the spans
are built from those figures with explicit start and end times when the turn's first agent audio
goes out, so tracing adds nothing to the hot path and reads the same numbers as `/metrics`.

    turn                       caller's speech start ─────────────────────────> first agent audio
      transport.caller_audio   the caller speaking (VAD: speech start → last voiced audio)
      stt                      last voiced audio → final transcript
      end_of_turn              last voiced audio → end of turn decided
      executor                 turn decided → the flow step reached the LLM (or `say`)
      llm                      → first token, then the rest of the first sentence
      tts                      first sentence → first synthesized audio
      transport.send           → the first agent frame sent to the caller

The trace id is the session's UUID, so every turn of a call (and a resumed call's turns) lands
in one trace. Off by default; `AICO_OBSERVABILITY_TRACES` = `console` or `otlp`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from aico.settings import ObservabilitySettings

_provider: TracerProvider | None = None
_configured = False


def configure_tracing(settings: ObservabilitySettings, *,
                      exporter: SpanExporter | None = None) -> TracerProvider | None:
    """This process's tracer provider, from settings (or with `exporter`, e.g. a test's
    InMemorySpanExporter, exported synchronously). None when traces are off."""
    global _provider, _configured
    _configured = True
    if exporter is None:
        if settings.traces == "off":
            _provider = None
            return None
        if settings.traces == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        processor: Any = BatchSpanProcessor(exporter)
    else:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(processor)
    _provider = provider
    return provider


def tracer_provider(settings: ObservabilitySettings) -> TracerProvider | None:
    if not _configured:
        configure_tracing(settings)
    return _provider


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def session_context(session_id: UUID | str) -> Any:
    """A remote parent whose trace id is the session's UUID: every turn joins that trace."""
    value = UUID(str(session_id)).int
    parent = SpanContext(trace_id=value, span_id=(value & ((1 << 64) - 1)) or 1, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def trace_turn(settings: ObservabilitySettings, turn: Mapping[str, Any], *,
               session_id: UUID | str, first_audio_at_ns: int | None = None) -> None:
    """Emit one answered turn's spans (nothing when traces are off or the turn went unanswered).
    `first_audio_at_ns` is wall-clock time of the first agent audio (default: now)."""
    provider = tracer_provider(settings)
    v2v = turn.get("voice_to_voice_ms")
    if provider is None or v2v is None:
        return
    tracer = provider.get_tracer("aico.voice")
    end = first_audio_at_ns if first_audio_at_ns is not None else time.time_ns()
    speech_end = end - _ns(v2v / 1000)
    speech_start = speech_end - _ns(float(turn.get("speech_s") or 0.0))

    def ms(key: str) -> int:
        value = turn.get(key)
        return _ns(value / 1000) if isinstance(value, int | float) and value > 0 else 0

    stt_done = speech_end + ms("stt_final_ms")
    decided = speech_end + ms("end_of_turn_ms")
    turn_start = max(stt_done, decided)
    llm_start = turn_start + ms("executor_ms")
    llm_end = llm_start + ms("llm_ttft_ms") + ms("llm_first_sentence_ms")
    tts_end = min(llm_end + ms("tts_ttfb_ms"), end)
    root = tracer.start_span("turn", context=session_context(session_id),
                             start_time=speech_start,
                             attributes={"aico.session_id": str(session_id),
                                         "aico.voice_to_voice_ms": int(v2v)})
    children = [("transport.caller_audio", speech_start, speech_end),
                ("stt", speech_end, stt_done), ("end_of_turn", speech_end, decided),
                ("executor", turn_start, llm_start), ("llm", llm_start, llm_end),
                ("tts", llm_end, tts_end), ("transport.send", tts_end, end)]
    ctx = trace.set_span_in_context(root)
    for name, start, stop in children:
        span = tracer.start_span(name, context=ctx, start_time=min(start, end))
        span.end(end_time=min(max(stop, start), end))
    root.end(end_time=end)
