"""Several calls in one `VoiceSession` process (`voice.calls_per_process`): they share its
imports and models, and each goes on as if it were alone — answered its own turns, hung up
without touching the other, and, when the process is killed, each reattached to the
restarted actor and resumed. The pool packs calls into the actor already carrying some, keeps
its free slots warm, and retires an actor only once it carries no call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from test_actor_restart import PinnedModelsPool, calls_on_actors
from test_voice_call import voice_session
from voice_api import transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, HOURS, ORDER, bakery_flow
from waiting import until

from actors.host import RayVoiceHost


@pytest.fixture
async def shared_host(ray_cluster, voice_server) -> AsyncIterator[tuple[RayVoiceHost, Any]]:
    """The API's calls on actors that carry two calls each; two slots warm: one actor."""
    async with calls_on_actors(voice_server, PinnedModelsPool(
            size=2, max_restarts=2, calls_per_process=2)) as (host, actors):
        assert len(actors.actors) == 1 and actors.free_slots() == 2
        yield host, actors


async def two_sessions(api: Any, voice_server: Any, voices: Any
                       ) -> tuple[list[Any], list[str], bytes, bytes]:
    """Two bakery calls' session ids and URLs, and the two questions their callers ask."""
    sessions = [await voice_session(api, voice_server, bakery_flow()) for _ in range(2)]
    hours, order = (await voices.caller("What are your hours?"),
                    await voices.caller("I would like to order."))
    return [s for s, _ in sessions], [url for _, url in sessions], hours, order


async def greeted(*calls: CallClient) -> None:
    await asyncio.gather(*(call.wait_event("agent_speech_ended", timeout=120) for call in calls))


async def ask(call: CallClient, speech: bytes) -> float:
    spoke = await call.say(speech)
    await call.wait_event("agent_speech_ended", after=spoke, timeout=180)
    return spoke


async def test_two_calls_share_one_process_and_each_is_answered_on_its_own(
        api, voice_server, voices, shared_host):
    host, actors = shared_host
    (first_id, second_id), (first_url, second_url), hours, order = await two_sessions(
        api, voice_server, voices)
    async with CallClient(second_url) as second:
        async with CallClient(first_url) as first:
            await greeted(first, second)
            actor = host.calls[str(first_id)].actor
            pid = await actor.warm.remote()
            assert await host.calls[str(second_id)].actor.warm.remote() == pid
            assert sorted(await actor.live_calls.remote()) == sorted([str(first_id),
                                                                      str(second_id)])
            assert actors.stats == {"warm": 2, "cold": 0, "retired": 0}
            # Each call's audio and events travel on its own media link, not Ray calls.
            links = [host.calls[str(sid)].link for sid in (first_id, second_id)]
            assert all(link is not None for link in links) and links[0] is not links[1]

            # Both ask at once; each hears the answer to its own question.
            asked_hours, asked_order = await asyncio.gather(ask(first, hours),
                                                            ask(second, order))
            assert agent_lines(first, after=asked_hours) == [HOURS]
            assert agent_lines(second, after=asked_order) == [ORDER]
        # The first caller hung up: only their call left the process.
        await wait_status(api, first_id, "ended")
        assert await until(lambda: _carries(actor, [str(second_id)]), timeout=60)
        assert str(first_id) not in host.calls

        asked = await ask(second, hours)
        assert agent_lines(second, after=asked) == [HOURS]
        assert await actor.warm.remote() == pid  # the same process all along
        heard = user_lines(second)
        assert len(heard) == 2 and "order" in heard[0].lower() and "hours" in heard[1].lower()
    record = await wait_status(api, second_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", ORDER), ("user", heard[1]),
                                  ("assistant", HOURS)]
    first_heard = user_lines(first)
    assert transcript(await wait_status(api, first_id, "ended")) == [
        ("assistant", GREETING), ("user", first_heard[0]), ("assistant", HOURS)]


async def test_both_calls_of_a_killed_process_resume_on_the_restarted_actor(
        api, voice_server, voices, shared_host):
    import ray

    host, _ = shared_host
    (first_id, second_id), (first_url, second_url), hours, order = await two_sessions(
        api, voice_server, voices)
    async with CallClient(first_url) as first, CallClient(second_url) as second:
        await greeted(first, second)
        actor = host.calls[str(first_id)].actor
        pid = await actor.warm.remote()
        assert await host.calls[str(second_id)].actor.warm.remote() == pid

        ray.kill(actor, no_restart=False)
        killed = time.monotonic()
        await asyncio.gather(first.wait_event("resumed", after=killed, timeout=300),
                             second.wait_event("resumed", after=killed, timeout=300))
        assert await actor.warm.remote() != pid  # a new worker process, carrying both again
        assert sorted(await actor.live_calls.remote()) == sorted([str(first_id),
                                                                  str(second_id)])

        asked_hours, asked_order = await asyncio.gather(ask(first, hours), ask(second, order))
        assert agent_lines(first, after=asked_hours) == [HOURS]
        assert agent_lines(second, after=asked_order) == [ORDER]
    for session_id, call, answer in ((first_id, first, HOURS), (second_id, second, ORDER)):
        heard = user_lines(call)
        assert len(heard) == 1
        record = await wait_status(api, session_id, "ended")
        assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                      ("assistant", answer)]


async def test_the_pool_packs_calls_and_retires_an_actor_only_once_it_carries_none(
        ray_cluster):
    import ray

    actors = PinnedModelsPool(size=3, max_restarts=0, calls_per_process=2, calls_per_actor=2)
    try:
        await actors.wait_warm(timeout_s=300)
        # Three free slots kept warm: two actors of two slots each.
        assert len(actors.actors) == 2 and actors.free_slots() == 4
        first, second = str(uuid4()), str(uuid4())
        a = await actors.acquire(first)
        assert await actors.acquire(second) is a  # packed into the actor already carrying one
        assert await actors.acquire(str(uuid4())) is not a  # `a` is full: the other warm actor
        pid_a = await a.warm.remote()

        # `a` has served its two calls: it takes no new one, but lives while it carries one.
        await actors.release(a, first)
        assert actors.stats["retired"] == 0 and a in actors.actors
        assert await a.warm.remote() == pid_a
        assert await actors.acquire(str(uuid4())) is not a
        await actors.release(a, first)  # released already: nothing changes
        assert actors.stats["retired"] == 0 and a in actors.actors
        await actors.release(a, second)
        assert actors.stats["retired"] == 1 and a not in actors.actors

        async def dead() -> bool:  # ray.kill is asynchronous: a call right after may still run
            try:
                await a.warm.remote()
            except ray.exceptions.RayActorError:
                return True
            return False

        assert await until(dead, timeout=30)
    finally:
        await actors.aclose()


async def _carries(actor: Any, session_ids: list[str]) -> bool:
    return sorted(await actor.live_calls.remote()) == sorted(session_ids)
