"""A test caller for the voice WebSocket: a microphone that streams real time (silence when
the caller is not speaking), and a recorder of everything the agent sends.

On leaving `async with CallClient(url) as call:` the client fails the test if anything went
wrong that the test did not expect: an `error` event whose code is not in `allowed_errors`, a
receive error (the connection dropped), or a close code other than a normal one (1000, or the
client's own hang-up). A test that expects a refusal says so with `expect_close=` and
`allowed_errors=`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any, Self

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

FRAME_S = 0.02


def rms(pcm16: bytes) -> float:
    a = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    return float(np.sqrt((a * a).mean())) if a.size else 0.0


NORMAL_CLOSES = frozenset({1000})


class CallClient:
    def __init__(self, url: str, *, sample_rate: int = 16000, realtime: bool = True,
                 allowed_errors: frozenset[str] | set[str] = frozenset(),
                 expect_close: frozenset[int] | set[int] = NORMAL_CLOSES) -> None:
        self.url = url
        self.allowed_errors = frozenset(allowed_errors)
        self.expect_close = frozenset(expect_close)
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.audio: list[tuple[float, bytes]] = []
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.out_rate = 0
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
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

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.hang_up()
        if exc_type is None:
            self.assert_clean()

    def unexpected(self) -> list[str]:
        """What went wrong on this call that the test did not say it expects."""
        problems = [f"error event {e}" for _, e in self.events if e.get("type") == "error"
                    and e.get("code") not in self.allowed_errors]
        if self.receive_error is not None:
            problems.append(f"receive error {self.receive_error!r}")
        if self.close_code is not None and self.close_code not in self.expect_close:
            problems.append(f"closed with {self.close_code} ({self.close_reason!r})")
        return problems

    def assert_clean(self) -> None:
        problems = self.unexpected()
        assert not problems, "; ".join(problems)

    async def hang_up(self) -> None:
        """Leave the call (closing the socket is a hang-up); records the close code."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self.close_code is None:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
        self.closed.set()

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.audio.append((now, message))
                else:
                    self.events.append((now, json.loads(message)))
        except ConnectionClosed:
            pass  # the close code is what a test checks
        except Exception as err:  # noqa: BLE001 - recorded, asserted on exit
            self.receive_error = err
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
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


def agent_lines(call: CallClient, *, after: float = 0.0) -> list[str]:
    """The agent's own words: its final `transcript` events (not what Whisper hears)."""
    return [e["text"] for t, e in call.events if t >= after and e.get("type") == "transcript"
            and e.get("role") == "agent" and e.get("final")]


def user_lines(call: CallClient) -> list[str]:
    """What the pipeline heard the caller say (final `transcript` events)."""
    return [e["text"] for _, e in call.events if e.get("type") == "transcript"
            and e.get("role") == "user" and e.get("final")]
