"""The call's pipeline runs in a pre-warmed `VoiceSession` Ray actor; killed mid-call, Ray
restarts it, it rehydrates from PostgreSQL and the call carries on. Killed between turns, the
flow simply listens again; killed while a reply is being spoken, the reply is committed as not
heard (docs/voice-protocol.md §5) and the flow goes on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_barge_in import wait_agent_audio
from test_voice_call import voice_session
from voice_api import MODELS_MODE, stored_events, transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, HOURS, bakery_flow

from actors.host import RayVoiceHost
from actors.pool import VoiceActorPool


class PinnedModelsPool(VoiceActorPool):
    """Actors whose models run where the other voice tests' do (the actor's own process reads
    `AICO_MODELS` from its environment), whatever Serve apps other tests left running."""

    def _new_actor(self) -> Any:
        from actors.voice_session import VoiceSession

        return VoiceSession.options(  # type: ignore[attr-defined]  # @ray.remote: an ActorClass
            max_restarts=self.max_restarts,
            runtime_env={"env_vars": {"AICO_MODELS": MODELS_MODE}}).remote()


@contextlib.asynccontextmanager
async def calls_on_actors(voice_server: Any, actors: PinnedModelsPool
                          ) -> AsyncIterator[tuple[RayVoiceHost, Any]]:
    """The test API's calls on `actors` (warmed here) while the block runs; then the pool ends."""
    await actors.wait_warm(timeout_s=300)
    state = voice_server.app.state.aico
    local_host = state.voice_host
    host = state.voice_host = RayVoiceHost(actors, reattach_timeout_s=300,
                                           settings=state.settings)
    try:
        yield host, actors
    finally:
        state.voice_host = local_host
        await actors.aclose()


@pytest.fixture
async def ray_host(ray_cluster, voice_server) -> AsyncIterator[tuple[RayVoiceHost, Any]]:
    async with calls_on_actors(voice_server, PinnedModelsPool(size=1, max_restarts=2)) as (
            host, actors):
        assert len(actors.idle) == 1
        yield host, actors


async def kill_and_wait_resumed(call: CallClient, host: RayVoiceHost, session_id: Any) -> float:
    import ray

    carried = host.calls[str(session_id)]
    actor, link = carried.actor, carried.link
    assert link is not None  # the call's audio travels on its media link
    pid = await actor.warm.remote()
    ray.kill(actor, no_restart=False)
    killed = time.monotonic()
    await call.wait_event("resumed", after=killed, timeout=300)
    assert await actor.warm.remote() != pid  # a new worker process
    # ... and on a new link to the restarted process (the old one died with it).
    assert carried.link is not None and carried.link is not link
    return killed


async def test_a_killed_session_actor_comes_back_and_the_call_carries_on(
        api, voice_server, voices, ray_host):
    host, actors = ray_host
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=120)
        assert agent_lines(call) == [GREETING]
        assert actors.stats["warm"] == 1
        await kill_and_wait_resumed(call, host, session_id)

        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
        assert agent_lines(call, after=spoke) == [HOURS]
        heard = user_lines(call)
        assert len(heard) == 1 and "hours" in heard[0].lower()
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", HOURS)]


async def test_an_actor_killed_mid_reply_commits_the_reply_as_not_heard(
        api, voice_server, voices, ray_host):
    host, _ = ray_host
    session_id, url = await voice_session(api, voice_server, bakery_flow(story=True))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=120)
        spoke = await call.say(await voices.caller("Tell me a story."))
        # The LLM's reply is being spoken: kill the actor in the middle of it.
        await wait_agent_audio(call, since=spoke, seconds=1.5, timeout=180)
        assert not call.has_event("agent_speech_ended", after=spoke)
        killed = await kill_and_wait_resumed(call, host, session_id)

        # The flow went on past the reply: the caller is listened to and answered.
        asked = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=asked, timeout=120)
        assert agent_lines(call, after=killed) == [HOURS]
        heard = user_lines(call)
        assert len(heard) == 2 and "story" in heard[0].lower() and "hours" in heard[1].lower()
    # Stored: the reply was committed as not heard (interrupted, no words), and nothing of it
    # is in the transcript; the turns around it are.
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("user", heard[1]), ("assistant", HOURS)]
    events = await stored_events(api, session_id)
    requested = [e["payload"]["token"] for e in events if e["type"] == "llm.requested"]
    completed = [e["payload"] for e in events if e["type"] == "llm.completed"]
    assert len(requested) == 1
    assert [(c["token"], c["text"], c.get("interrupted")) for c in completed] == [
        (requested[0], "", True)]
    assert not [e for e in events if e["type"] == "llm.reply"]
