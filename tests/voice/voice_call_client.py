"""A test caller for the voice WebSocket: a microphone that streams real time (silence when
the caller is not speaking), and a recorder of everything the agent sends.

On leaving `async with CallClient(url) as call:` the client fails the test if anything went
wrong that the test did not expect: an `error` event whose code is not in `allowed_errors`, a
receive error (the connection dropped), or a close code other than a normal one (1000, or the
client's own hang-up). A test that expects a refusal says so with `expect_close=` and
`allowed_errors=`.

With `reconnect=` (an async function returning a fresh voice URL of the same session, e.g. from
`POST /v1/sessions/{id}/voice-token`), a socket that drops (its API replica or node died: no
normal close, no refusal) is reconnected as docs/voice-protocol.md says: a fresh token, `start`
again, retried while the old connection's lease is still held (4423) or the API cannot answer,
until `reconnect_timeout`. The microphone pauses while the call is away (the frame it could not
send is sent first on the new socket); each drop is in `drops`, each reconnect's `ready` in
`events`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

FRAME_S = 0.02


def rms(pcm16: bytes) -> float:
    a = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    return float(np.sqrt((a * a).mean())) if a.size else 0.0


NORMAL_CLOSES = frozenset({1000})
# Closes that say the call is over or refused for good: never reconnected.
FINAL_CLOSES = frozenset({1000, 1008, 1009, 4401, 4404, 4409, 4429})
BUSY = 4423  # the dropped connection's lease is still held: try again shortly


class CallClient:
    def __init__(self, url: str, *, sample_rate: int = 16000, realtime: bool = True,
                 allowed_errors: frozenset[str] | set[str] = frozenset(),
                 expect_close: frozenset[int] | set[int] = NORMAL_CLOSES,
                 reconnect: Callable[[], Awaitable[str]] | None = None,
                 reconnect_timeout: float = 120.0, ready_timeout: float = 60.0) -> None:
        self.url = url
        self.ready_timeout = ready_timeout
        self.reconnect = reconnect
        self.reconnect_timeout = reconnect_timeout
        # (when it dropped, its close code, seconds until the call was back or None: not back)
        self.drops: list[tuple[float, int | None, float | None]] = []
        self.refused_reconnects: list[dict[str, Any]] = []
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
        self._hanging_up = False
        self._online = asyncio.Event()
        self._mic_on = asyncio.Event()  # cleared: the line stalls (nothing is sent)
        self._mic_on.set()

    async def __aenter__(self) -> Self:
        self.connected_at = time.monotonic()
        self.ws = await connect(self.url, max_size=None, ping_interval=None)
        await self.ws.send(json.dumps({"type": "start", "sample_rate": self.sample_rate}))
        first = json.loads(await asyncio.wait_for(self.ws.recv(), self.ready_timeout))
        self.events.append((time.monotonic(), first))
        if first.get("type") == "ready":
            self.out_rate = int(first["sample_rate"])
        self._online.set()
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
        self._hanging_up = True
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
        while True:
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
            code = self.ws.close_code
            if self.reconnect is None or self._hanging_up or code in FINAL_CLOSES \
                    or self.receive_error is not None:
                break
            if not await self._reconnect(code):
                break
        if self.ws.close_code is not None:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
        self.closed.set()

    async def _reconnect(self, dropped_code: int | None) -> bool:
        """The socket dropped without the call ending: a fresh token and `start` through any
        replica, until the call is back (True) or `reconnect_timeout` has passed."""
        assert self.reconnect is not None
        self._online.clear()
        dropped_at = time.monotonic()
        self.drops.append((dropped_at, dropped_code, None))
        deadline = dropped_at + self.reconnect_timeout
        while time.monotonic() < deadline:
            try:
                url = await self.reconnect()
                ws = await connect(url, max_size=None, ping_interval=None, open_timeout=30)
            except Exception:  # noqa: BLE001 - the API is coming back: try again shortly
                await asyncio.sleep(1.0)
                continue
            try:
                await ws.send(json.dumps({"type": "start", "sample_rate": self.sample_rate}))
                first = json.loads(await asyncio.wait_for(ws.recv(), self.ready_timeout))
            except Exception:  # noqa: BLE001 - dropped again while attaching
                await asyncio.sleep(1.0)
                continue
            if first.get("type") == "ready":
                self.ws = ws
                self.out_rate = int(first["sample_rate"])
                now = time.monotonic()
                self.events.append((now, first))
                self.drops[-1] = (dropped_at, dropped_code, round(now - dropped_at, 2))
                self._online.set()
                return True
            self.refused_reconnects.append(first)
            with contextlib.suppress(Exception):
                await ws.close()
            if first.get("code") != "call_in_progress":  # the call is over, or not ours
                self.events.append((time.monotonic(), first))
                self.ws = ws
                return False
            await asyncio.sleep(1.0)  # the dropped connection's lease has not lapsed yet
        return False

    async def _mic(self) -> None:
        step = int(self.sample_rate * FRAME_S) * 2
        silence = b"\0" * step
        start = time.monotonic()
        i = 0
        while True:
            if not self._mic_on.is_set():
                await self._mic_on.wait()
                start, i = time.monotonic(), 0
            frame = self._frames.popleft() if self._frames else silence
            if frame is not silence and rms(frame) > 300:
                self.last_speech_sent = time.monotonic()
            try:
                await self.ws.send(frame)
            except Exception:  # noqa: BLE001
                if self.reconnect is None or self._hanging_up:
                    return
                # Away (reconnecting): the caller's frame waits for the call to be back.
                if frame is not silence:
                    self._frames.appendleft(frame)
                await self._online_or_closed()
                if self.closed.is_set():
                    return
                start, i = time.monotonic(), 0
                continue
            if not self._frames:
                self._sent_all.set()
            i += 1
            delay = start + i * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.5:  # fell behind (a busy box): do not burst
                start, i = time.monotonic(), 0

    async def _online_or_closed(self) -> None:
        waits = [asyncio.create_task(self._online.wait()), asyncio.create_task(self.closed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def say(self, pcm16: bytes) -> float:
        """Stream caller speech in real time; returns when its last frame was sent."""
        step = int(self.sample_rate * FRAME_S) * 2
        self._sent_all.clear()
        for i in range(0, len(pcm16), step):
            self._frames.append(pcm16[i:i + step].ljust(step, b"\0"))
        await self._sent_all.wait()
        return self.last_speech_sent

    async def stall(self, seconds: float) -> None:
        """The line goes dead for `seconds` (no frames at all, not even silence), then the
        microphone goes on, as a caller's dropped and restored connection does."""
        self._mic_on.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._mic_on.set()

    async def say_after_stall(self, pcm16: bytes) -> float:
        """The line stalls for as long as the speech lasts (nothing is sent), then delivers it
        in one burst, as a congested network or a starved process does; the microphone goes
        on in real time after it. Returns when the last frame was sent."""
        step = int(self.sample_rate * FRAME_S) * 2
        self._mic_on.clear()
        try:
            await asyncio.sleep(len(pcm16) / (2 * self.sample_rate))
            for i in range(0, len(pcm16), step):
                await self.ws.send(pcm16[i:i + step].ljust(step, b"\0"))
            self.last_speech_sent = time.monotonic()
        finally:
            self._mic_on.set()
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
