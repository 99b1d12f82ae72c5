"""The speech-to-text deployment for a streaming self-hosted STT (Vosk): one model per replica,
one recognizer per live stream.

A stream's recognizer lives in the replica that took its first audio. Serve does not promise
that the next call lands on the same replica (several replicas, a restart), so every call says
how many bytes of the utterance the caller has sent before it: a replica that does not hold
the stream at that point answers `replay`, and the caller resends the utterance so far, which
rebuilds the recognizer there. Idle streams are dropped after `IDLE_S`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ray import serve

from providers.runtime import load_provider_sync
from providers.stt import SpeechEvent, Transcript

IDLE_S = 120.0
MAX_STREAMS = 512


@dataclass
class _Live:
    recognizer: Any
    received: int = 0  # bytes of the current utterance accepted so far
    used: float = 0.0


@serve.deployment(name="stt", max_ongoing_requests=32)
class StreamingSTTDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("stt", config)
        self._provider.warm_up()
        self._streams: OrderedDict[str, _Live] = OrderedDict()

    async def recognize(self, pcm16: bytes, sample_rate: int,
                        language: str | None = None) -> Transcript:
        return await self._provider._recognize_impl(pcm16, sample_rate=sample_rate,
                                                    language=language)

    async def stream_accept(self, stream_id: str, received: int, pcm16: bytes,
                            sample_rate: int, language: str | None,
                            end_of_utterance: bool) -> dict[str, Any]:
        """Decode the next audio of a stream; at `end_of_utterance` add its final event.
        Returns {"replay": True} when this replica does not hold the stream at `received`."""
        self._drop_idle()
        live = self._streams.get(stream_id)
        if live is None or live.received != received:
            if received:
                return {"replay": True, "events": []}
            live = _Live(self._provider.recognizer_stream(sample_rate=sample_rate,
                                                          language=language))
            self._streams[stream_id] = live
        self._streams.move_to_end(stream_id)
        live.used = time.monotonic()
        events: list[SpeechEvent] = []
        if pcm16:
            events += await asyncio.to_thread(live.recognizer.accept, pcm16)
            live.received += len(pcm16)
        if end_of_utterance:
            final = await asyncio.to_thread(live.recognizer.finish)
            if final is not None:
                events.append(final)
            live.received = 0
        return {"replay": False, "events": events}

    def stream_close(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    def live_streams(self) -> int:
        return len(self._streams)

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for sid in [s for s, live in self._streams.items() if now - live.used > IDLE_S]:
            del self._streams[sid]
        while len(self._streams) >= MAX_STREAMS:
            self._streams.popitem(last=False)

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        if self._provider.config is None:
            raise RuntimeError("stt model not loaded")
