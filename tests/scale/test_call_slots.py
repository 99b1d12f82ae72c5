"""A node's supervisor packs calls into its actors' slots (`voice.calls_per_process`): two
calls placed one after the other share one actor; each is found, released and reaped on its
own — a caller whose transport went away is hung up while the other call in the same process
carries on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
import ray
from test_call_placement import MODELS, new_voice_session, session_end_reason
from waiting import until

from actors.call_placement import NAMESPACE, CallPlacement, supervisor_name
from actors.host import RayVoiceHost
from aico.settings import VoiceSettings

VOICE = VoiceSettings(pool_size=2, calls_per_process=2, orphan_after_s=20)
FRAME = b"\0\0" * 320  # 20 ms of silence at 16 kHz: a live transport sends it all the time


@ray.remote(num_cpus=0)
class SlotReplicaStandIn:
    """An API replica (a process the test can end) that opens a call through its own host."""

    async def open_call(self, session_id: str) -> list[Any]:
        self.host = RayVoiceHost(CallPlacement(VOICE))
        return [(await self.host.open(session_id, sample_rate=16000)).actor]


@pytest.fixture(scope="module")
async def placement(ray_cluster: None) -> AsyncIterator[CallPlacement]:
    # A supervisor is named per node and outlives its creator: one left by another module
    # (other settings) goes, so this module's is made with two calls per process.
    for node in ray.nodes():
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(supervisor_name(node["NodeID"]), namespace=NAMESPACE))
    placement = CallPlacement(VOICE)
    await placement.wait_warm(timeout_s=300)
    yield placement
    for supervisor in placement.supervisors.values():
        assert await supervisor.retire.remote() == 0
        ray.kill(supervisor)


async def live_calls(placement: CallPlacement) -> int:
    return sum(load["live"] for load in await placement.loads())


async def test_two_calls_share_an_actor_and_each_is_released_alone(placement):
    first, second = str(uuid4()), str(uuid4())
    actor = await placement.acquire(first)
    assert (await placement.acquire(second))._actor_id == actor._actor_id
    assert await live_calls(placement) == 2
    assert (await placement.find(second))._actor_id == actor._actor_id

    await placement.release(actor, first)
    assert await placement.find(first) is None
    assert (await placement.find(second))._actor_id == actor._actor_id
    assert await live_calls(placement) == 1
    await placement.release(actor, second)
    assert await placement.find(second) is None
    assert await live_calls(placement) == 0


async def test_only_the_call_that_lost_its_transport_is_hung_up(placement, api):
    orphan, kept = await new_voice_session(api), await new_voice_session(api)
    replica = SlotReplicaStandIn.options(runtime_env=MODELS).remote()
    [actor] = await replica.open_call.remote(str(orphan))
    host = RayVoiceHost(placement)
    call = await host.open(kept, sample_rate=16000)
    assert call.actor._actor_id == actor._actor_id  # both calls in one process
    ray.kill(replica)  # the orphan's socket went with it: no audio of theirs comes again

    async def caller_on_the_line() -> None:
        while True:
            call.push_audio(FRAME)
            await asyncio.sleep(0.02)

    line = asyncio.create_task(caller_on_the_line())
    try:
        assert await session_end_reason(api, orphan) == "transport_lost"
        assert await until(lambda: _carries(actor, [str(kept)]), timeout=60)
        assert await live_calls(placement) == 1
        assert (await placement.find(str(kept)))._actor_id == actor._actor_id
    finally:
        line.cancel()
    await call.hang_up("hangup")
    assert await session_end_reason(api, kept) == "hangup"
    assert await live_calls(placement) == 0


async def _carries(actor: Any, session_ids: list[str]) -> bool:
    return sorted(await actor.live_calls.remote()) == sorted(session_ids)
