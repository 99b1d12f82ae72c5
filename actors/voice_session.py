"""The `VoiceSession` Ray actor: the pipelines of live calls, in a worker process of their own.

An actor is created ahead of need by `actors.pool.VoiceActorPool`, warms up (database pool,
VAD, the default STT and TTS models, one decode and one synthesis) and waits. It carries up to
`voice.calls_per_process` calls at once, each keyed by its session id: `attach` starts a call's
`VoicePipeline`; `push_audio` / `control` feed it; `outbound` is a streaming generator of
batches of agent audio (bytes) and events (dicts). When a call ends, `reset` forgets it (and
only it); the actor serves further calls until `calls_per_actor` bounds that.

Several calls share one process's imports and models (≈145 MiB) — less memory per call, but a
crash of the process drops all of them at once. It holds nothing PostgreSQL does not: killed
mid-call, Ray restarts it (`max_restarts`) empty, each call's transport calls `warm` and
`attach(session_id, ..., resume=True)` again on its own, and each new pipeline carries on from
its session's last committed step.

A call's audio and events travel on its media link (actors.media_link: one TCP connection from
the replica that carries the call, opened after `attach`, served by the actor's `MediaServer`);
`push_audio` / `outbound` carry them as Ray calls for a replica that has no link. One reader
takes a call's outbox at a time: a newer one (a reconnect) ends the older one's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

log = logging.getLogger("aico.actors.voice_session")

# How many calls each actor process carries now, one file per pid: a benchmark on the machine
# (bench/voice.py) divides a process's PSS by it; Ray's own process titles cannot carry it.
CALLS_DIR = Path(tempfile.gettempdir()) / "aico-voice-calls"


def prune_calls_dir() -> int:
    """Remove the files of processes that have ended (Ray kills a retired actor without a word,
    so none removes its own; 950 had piled up on one machine over two days). Run by each new
    actor as it warms; only where /proc tells which processes live. Returns how many went."""
    if not Path("/proc/self").exists():
        return 0
    removed = 0
    with contextlib.suppress(OSError):
        for entry in CALLS_DIR.iterdir():
            if entry.name.isdigit() and not Path("/proc", entry.name).exists():
                entry.unlink(missing_ok=True)
                removed += 1
    return removed


@dataclass
class CallState:
    """One call carried by the actor."""

    pipeline: Any
    outbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    # Set when another reader (link or Ray stream) took the outbox from the current one.
    reader_over: asyncio.Event = field(default_factory=asyncio.Event)
    # A call's transport sends audio all the time: a long silence means it is gone.
    last_audio: float = field(default_factory=time.monotonic)
    live: bool = False  # counted in aico_live_calls


@ray.remote(num_cpus=0, max_task_retries=0, max_concurrency=100)  # type: ignore[call-overload]
class VoiceSession:
    def __init__(self) -> None:
        self._pool: Any = None
        self._calls: dict[str, CallState] = {}  # by session id
        self._warm: asyncio.Task[None] | None = None
        self.calls = 0
        self.node = ""
        self._media: Any = None  # actors.media_link.MediaServer, started by the warm-up
        self._low: Any = None  # aico.priority.LowPriority of a background warm-up

    async def warm(self, background: bool = False) -> int:
        """Ready to take a call at once. Returns the worker's pid. A `background` warm-up (a
        spare for the pool, not a call waiting) runs at a lower CPU priority than live calls
        (aico.priority); a call that comes meanwhile raises it back."""
        from aico.priority import LowPriority

        if self._warm is None:
            if background:
                self._low = LowPriority(what="a spare voice actor's warm-up")
                self._low.lower()
            self._warm = asyncio.create_task(self._warm_up())
        elif not background and self._low is not None:
            self._low.restore()
        try:
            await self._warm
        finally:
            if self._low is not None and self._warm.done():
                self._low.restore()
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
        prune_calls_dir()
        settings = get_settings()
        self.node = node_label()
        metrics.sample_queue("voice_outbox", self._queued_out)
        metrics.sample_queue("voice_events", self._pending_events)
        start_metrics_push(settings.observability.metrics_push_s)
        if not (settings.database_app_url or settings.database_url):
            raise RuntimeError("AICO_DATABASE_URL is not set for the voice actor")
        # Each call holds a connection only for a step; a few more calls, a few more at most.
        calls = settings.voice.calls_per_process
        self._pool = await create_app_pool(settings, min_size=1, max_size=3 + calls)
        await warm_default_providers(llm=True)
        from actors.media_link import MediaServer

        self._media = await MediaServer.start(ray.util.get_node_ip_address(), self._link_for)
        # The call's modules too: imported on the first `attach` they held a fresh actor's
        # first call ≈0.9 s (1.1-1.5 s on a busy machine) between acquire and its pipeline.
        import actors.pipeline  # noqa: F401 - loaded now, while no call waits

        self._publish_calls()

    async def attach(self, session_id: str, sample_rate: int, resume: bool,
                     connected_ago_s: float) -> dict[str, Any]:
        from actors.call_metrics import observing
        from actors.pipeline import VoicePipeline
        from aico.settings import get_settings

        await self.warm()
        previous = self._calls.pop(session_id, None)
        if previous is not None:
            await previous.pipeline.detach()
        settings = get_settings()
        call = CallState(pipeline=None)
        send = observing(lambda item: call.outbox.put_nowait(item), session_id=session_id,
                         node=self.node, settings=settings)
        pipeline = call.pipeline = VoicePipeline(pool=self._pool, settings=settings,
                                                 session_id=session_id, send=send)
        self._calls[session_id] = call
        if previous is not None and previous.live:
            call.live = True  # the same live call, counted once
        self.calls += 1
        self._count_live(call, True)
        self._publish_calls()
        return await pipeline.start(sample_rate=sample_rate, resume=resume,
                                    connected_at=time.monotonic() - connected_ago_s)

    async def push_audio(self, session_id: str, pcm16: bytes) -> None:
        call = self._calls.get(session_id)
        if call is not None:
            call.last_audio = time.monotonic()
            call.pipeline.push_audio(pcm16)

    async def control(self, session_id: str, message: dict[str, Any]) -> None:
        call = self._calls.get(session_id)
        if call is not None:
            await call.pipeline.control(message)

    async def hang_up(self, session_id: str, reason: str = "hangup") -> None:
        call = self._calls.get(session_id)
        if call is not None:
            await call.pipeline.hang_up(reason)

    async def outbound(self, session_id: str) -> AsyncIterator[list[Any]]:
        """Batches of what the call sends, until it ends (for a replica without a link)."""
        call = self._calls.get(session_id)
        if call is None:
            return
        async for batch in self._batches(call):
            yield batch

    def media_address(self) -> list[Any] | None:
        """[host, port] of this process's media links (None before the warm-up)."""
        return list(self._media.address) if self._media is not None else None

    def _link_for(self, session_id: str, token: str) -> Any:
        """How a link that said hello for `session_id` is served: None unless this process
        carries that call and the token is the session's."""
        from actors.media_link import serve_link, verify_media_token
        from aico.settings import get_settings

        call = self._calls.get(session_id)
        if call is None or not verify_media_token(get_settings(), session_id, token):
            return None

        def on_audio(pcm16: bytes) -> None:
            call.last_audio = time.monotonic()
            call.pipeline.push_audio(pcm16)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await serve_link(reader, writer, on_audio=on_audio, outbound=self._batches(call))

        return serve

    async def _batches(self, call: CallState) -> AsyncIterator[list[Any]]:
        """The call's outbox, taken over from its previous reader (what that reader had not
        read moves along), until the call ends or a newer reader takes it."""
        from actors.outbox import items_until

        queue: asyncio.Queue[Any] = asyncio.Queue()
        while not call.outbox.empty():
            queue.put_nowait(call.outbox.get_nowait())
        previous = call.reader_over
        call.outbox, call.reader_over = queue, asyncio.Event()
        previous.set()
        async for batch in items_until(queue, _either(call.pipeline.ended.wait(),
                                                      call.reader_over.wait())):
            yield batch

    async def reset(self, session_id: str) -> int:
        """Forget the finished call (the others carry on); returns how many calls this actor
        has served."""
        call = self._calls.pop(session_id, None)
        if call is not None:
            await call.pipeline.detach()
            self._count_live(call, False)
            self._publish_calls()
        from providers.onnx_session import release_freed_memory

        # What the call freed goes back to the OS, so the next call starts where this one did
        # (≈3 ms, between calls).
        release_freed_memory()
        return self.calls

    def _count_live(self, call: CallState, live: bool) -> None:
        from aico import metrics

        if live != call.live:
            call.live = live
            metrics.count_live_call(self.node, 1 if live else -1)

    def _publish_calls(self) -> None:
        with contextlib.suppress(OSError):  # a figure for benchmarks, never a call's failure
            CALLS_DIR.mkdir(exist_ok=True)
            (CALLS_DIR / str(os.getpid())).write_text(str(len(self._calls)))

    def _queued_out(self) -> float:
        return float(sum(call.outbox.qsize() for call in self._calls.values()))

    def _pending_events(self) -> float:
        pending = 0
        for call in self._calls.values():
            events = getattr(call.pipeline, "_events", None)  # inbound events awaiting a step
            pending += events.qsize() if isinstance(events, asyncio.Queue) else 0
        return float(pending)

    def node_id(self) -> str:
        return self.node

    def live_calls(self) -> list[str]:
        """The session ids of the calls this process carries now."""
        return list(self._calls)

    def quiet_for_s(self, session_id: str) -> float:
        """Seconds since the call's transport last sent audio (0 without that call)."""
        call = self._calls.get(session_id)
        return time.monotonic() - call.last_audio if call is not None else 0.0

    def rss_bytes(self) -> int:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


async def _either(*waits: Any) -> None:
    """Until the first of `waits` completes (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
