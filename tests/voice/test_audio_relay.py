"""How caller audio reaches a call's actor, and agent audio leaves the replica (`RayCall`)."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.host import RayCall, joined_audio


class _Method:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class SlowActor:
    """Takes pushes one at a time; each one waits until the test lets it finish."""

    def __init__(self) -> None:
        self.pushes: list[bytes] = []
        self.gate = asyncio.Event()
        self.push_audio = _Method(self._push)

    async def _push(self, session_id: str, pcm16: bytes) -> None:
        assert session_id == "s"  # the call's own slot in its actor
        self.pushes.append(pcm16)
        await self.gate.wait()


def frame(i: int) -> bytes:
    return bytes([i]) * 640  # 20 ms at 16 kHz


async def test_frames_that_arrive_while_a_push_is_in_flight_go_together_in_order() -> None:
    actor = SlowActor()
    call = RayCall(host=None, actor=actor, session_id="s", sample_rate=16000)  # type: ignore[arg-type]
    call.push_audio(frame(0))
    await asyncio.sleep(0.01)
    assert actor.pushes == [frame(0)]  # an idle relay sends a frame as it comes
    for i in range(1, 10):
        call.push_audio(frame(i))
    await asyncio.sleep(0.01)
    assert len(actor.pushes) == 1  # one push in flight at a time
    actor.gate.set()
    await asyncio.sleep(0.01)
    assert actor.pushes == [frame(0), b"".join(frame(i) for i in range(1, 10))]
    call._stop_sending()


async def test_a_stuck_actor_holds_only_the_newest_audio() -> None:
    from actors.host import MAX_UNSENT_BYTES

    actor = SlowActor()
    call = RayCall(host=None, actor=actor, session_id="s", sample_rate=16000)  # type: ignore[arg-type]
    call.push_audio(frame(0))
    await asyncio.sleep(0.01)
    for i in range(MAX_UNSENT_BYTES // 640 + 50):
        call.push_audio(frame(1 + i % 200))
    last = frame(1 + (MAX_UNSENT_BYTES // 640 + 49) % 200)
    actor.gate.set()
    await asyncio.sleep(0.01)
    assert len(actor.pushes[1]) == MAX_UNSENT_BYTES
    assert actor.pushes[1].endswith(last)
    call._stop_sending()


def test_consecutive_agent_frames_of_a_batch_leave_as_one_message() -> None:
    ready = {"type": "ready"}
    started = {"type": "agent_speech_started"}
    batch = [ready, b"a", b"b", started, b"c", b"d", b"e"]
    assert joined_audio(batch) == [ready, b"ab", started, b"cde"]
    assert joined_audio([]) == []
