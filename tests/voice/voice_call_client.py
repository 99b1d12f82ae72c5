"""A test caller for the voice WebSocket: a microphone that streams real time (silence when
the caller is not speaking), and a recorder of everything the agent sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any, Self

import numpy as np
from websockets.asyncio.client import connect

FRAME_S = 0.02


def rms(pcm16: bytes) -> float:
    a = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    return float(np.sqrt((a * a).mean())) if a.size else 0.0


class CallClient:
    def __init__(self, url: str, *, sample_rate: int = 16000, realtime: bool = True) -> None:
        self.url = url
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.audio: list[tuple[float, bytes]] = []
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.out_rate = 0
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._frames: deque[bytes] = deque()
        self._sent_all = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.connected_at = 0.0
        self.last_speech_sent = 0.0
        self.receive_error: Exception | None = None

    async def __aenter__(self) -> Self:
        self.connected_at = time.monotonic()
        self.ws = await connect(self.url, max_size=None, ping_interval=None)
        await self.ws.send(json.dumps({"type": "start", "sample_rate": self.sample_rate}))
        first = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
        self.events.append((time.monotonic(), first))
        if first.get("type") == "ready":
            self.out_rate = int(first["sample_rate"])
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._mic())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.closed.set()

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.audio.append((now, message))
                else:
                    self.events.append((now, json.loads(message)))
        except Exception as err:  # noqa: BLE001 - closed by the server
            self.receive_error = err
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def _mic(self) -> None:
        step = int(self.sample_rate * FRAME_S) * 2
        silence = b"\0" * step
        start = time.monotonic()
        i = 0
        while True:
            frame = self._frames.popleft() if self._frames else silence
            if frame is not silence and rms(frame) > 300:
                self.last_speech_sent = time.monotonic()
            try:
                await self.ws.send(frame)
            except Exception:  # noqa: BLE001
                return
            if not self._frames:
                self._sent_all.set()
            i += 1
            delay = start + i * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.5:  # fell behind (a busy box): do not burst
                start, i = time.monotonic(), 0

    async def say(self, pcm16: bytes) -> float:
        """Stream caller speech in real time; returns when its last frame was sent."""
        step = int(self.sample_rate * FRAME_S) * 2
        self._sent_all.clear()
        for i in range(0, len(pcm16), step):
            self._frames.append(pcm16[i:i + step].ljust(step, b"\0"))
        await self._sent_all.wait()
        return self.last_speech_sent

    async def wait_event(self, kind: str, *, after: float = 0.0, timeout: float = 60.0,
                         where: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, event in self.events:
                if t >= after and event.get("type") == kind and (where is None or where(event)):
                    return event
            if self.closed.is_set():
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind!r} event; got {[e for _, e in self.events]}")

    def has_event(self, kind: str, *, after: float = 0.0) -> bool:
        return any(t >= after and e.get("type") == kind for t, e in self.events)

    def first_audio_after(self, t0: float) -> float | None:
        for t, pcm in self.audio:
            if t >= t0 and rms(pcm) > 100:
                return t
        return None

    def agent_audio(self, *, since: float = 0.0, until: float = float("inf")) -> bytes:
        return b"".join(pcm for t, pcm in self.audio if since <= t < until)

    async def wait_agent_quiet(self, *, since: float, quiet_s: float = 1.0,
                               timeout: float = 60.0) -> None:
        """Until agent audio has started after `since` and then paused for `quiet_s`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            heard = [t for t, _ in self.audio if t >= since]
            if heard and time.monotonic() - heard[-1] > quiet_s:
                return
            if self.closed.is_set():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the agent did not finish speaking")
