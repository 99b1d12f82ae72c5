"""The `VoiceSession` Ray actor: one live call's pipeline, in its own worker process.

An actor is created ahead of need by `actors.pool.VoiceActorPool`, warms up (database pool,
VAD, the default STT and TTS models, one decode and one synthesis) and waits. `attach` starts
a call's `VoicePipeline`; `push_audio` / `control` feed it; `outbound` is a streaming
generator of batches of agent audio (bytes) and events (dicts). When the call ends the actor
is reset and may serve another call (`calls_per_actor` bounds that).

It holds nothing PostgreSQL does not: killed mid-call, Ray restarts it (`max_restarts`), the
transport calls `warm` and `attach(..., resume=True)` again, and the new pipeline carries on
from the session's last committed step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import ray

log = logging.getLogger("aico.actors.voice_session")


@ray.remote(num_cpus=0, max_task_retries=0, max_concurrency=100)  # type: ignore[call-overload]
class VoiceSession:
    def __init__(self) -> None:
        self._pool: Any = None
        self._pipeline: Any = None
        self._outbox: asyncio.Queue[Any] | None = None
        self._warm: asyncio.Task[None] | None = None
        self.calls = 0
        self._live = False  # counted in aico_live_calls
        self._last_audio = time.monotonic()  # a call's transport sends audio all the time
        self.node = ""

    async def warm(self) -> int:
        """Ready to take a call at once. Returns the worker's pid."""
        if self._warm is None:
            self._warm = asyncio.create_task(self._warm_up())
        await self._warm
        return os.getpid()

    async def _warm_up(self) -> None:
        from actors.call_metrics import node_label
        from actors.call_providers import warm_default_providers
        from actors.metrics_hub import start_metrics_push
        from aico import metrics
        from aico.settings import get_settings
        from db.pool import create_app_pool
        from providers.onnx_session import return_large_buffers_to_os

        return_large_buffers_to_os()  # before the models run: their buffers go back to the OS
        settings = get_settings()
        self.node = node_label()
        metrics.sample_queue("voice_outbox", lambda: self._outbox.qsize() if self._outbox else 0)
        metrics.sample_queue("voice_events", self._pending_events)
        start_metrics_push(settings.observability.metrics_push_s)
        if not (settings.database_app_url or settings.database_url):
            raise RuntimeError("AICO_DATABASE_URL is not set for the voice actor")
        self._pool = await create_app_pool(settings, min_size=1, max_size=4)
        await warm_default_providers(llm=True)
        # The call's modules too: imported on the first `attach` they held a fresh actor's
        # first call ≈0.9 s (1.1-1.5 s on a busy machine) between acquire and its pipeline.
        import actors.pipeline  # noqa: F401 - loaded now, while no call waits

    async def attach(self, session_id: str, sample_rate: int, resume: bool,
                     connected_ago_s: float) -> dict[str, Any]:
        from actors.call_metrics import observing
        from actors.pipeline import VoicePipeline
        from aico.settings import get_settings

        await self.warm()
        if self._pipeline is not None:
            await self._pipeline.detach()
        self._outbox = asyncio.Queue()
        settings = get_settings()
        send = observing(self._outbox.put_nowait, session_id=session_id, node=self.node,
                         settings=settings)
        self._pipeline = VoicePipeline(pool=self._pool, settings=settings,
                                       session_id=session_id, send=send)
        self.calls += 1
        self._last_audio = time.monotonic()
        self._count_live(True)
        return await self._pipeline.start(sample_rate=sample_rate, resume=resume,
                                          connected_at=time.monotonic() - connected_ago_s)

    async def push_audio(self, pcm16: bytes) -> None:
        self._last_audio = time.monotonic()
        if self._pipeline is not None:
            self._pipeline.push_audio(pcm16)

    async def control(self, message: dict[str, Any]) -> None:
        if self._pipeline is not None:
            await self._pipeline.control(message)

    async def hang_up(self, reason: str = "hangup") -> None:
        if self._pipeline is not None:
            await self._pipeline.hang_up(reason)

    async def outbound(self) -> AsyncIterator[list[Any]]:
        """Batches of what the call sends, until it ends."""
        outbox, pipeline = self._outbox, self._pipeline
        if outbox is None or pipeline is None:
            return
        from actors.outbox import items_until

        async for batch in items_until(outbox, pipeline.ended.wait()):
            yield batch

    async def reset(self) -> int:
        """Forget the finished call; returns how many calls this actor has served."""
        if self._pipeline is not None:
            await self._pipeline.detach()
        self._pipeline = None
        self._outbox = None
        self._count_live(False)
        from providers.onnx_session import release_freed_memory

        # What the call freed goes back to the OS, so the next call starts where this one did
        # (≈3 ms, between calls).
        release_freed_memory()
        return self.calls

    def _count_live(self, live: bool) -> None:
        from aico import metrics

        if live != self._live:
            self._live = live
            metrics.count_live_call(self.node, 1 if live else -1)

    def _pending_events(self) -> float:
        events = getattr(self._pipeline, "_events", None)  # inbound events awaiting a step
        return float(events.qsize()) if isinstance(events, asyncio.Queue) else 0.0

    def node_id(self) -> str:
        return self.node

    def quiet_for_s(self) -> float:
        """Seconds since the call's transport last sent audio (0 without a call)."""
        return time.monotonic() - self._last_audio if self._pipeline is not None else 0.0

    def rss_bytes(self) -> int:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0
