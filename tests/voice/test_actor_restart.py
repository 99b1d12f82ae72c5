"""The call's pipeline runs in a pre-warmed `VoiceSession` Ray actor; killed mid-call, Ray
restarts it, it rehydrates from PostgreSQL and the call carries on."""

from __future__ import annotations

import time

from test_voice_call import voice_session
from voice_call_client import CallClient
from voice_flows import bakery_flow, says_the_hours

from actors.host import RayVoiceHost
from actors.pool import VoiceActorPool


async def test_a_killed_session_actor_comes_back_and_the_call_carries_on(
        ray_cluster, api, voice_server, voices, pool):
    import ray

    actors = VoiceActorPool(size=1, max_restarts=2)
    await actors.wait_warm(timeout_s=300)
    assert len(actors._idle) == 1
    extras = voice_server.app.state.aico.extras
    local_host = extras["voice_host"]
    host = extras["voice_host"] = RayVoiceHost(actors, reattach_timeout_s=300)
    try:
        session_id, url = await voice_session(api, voice_server, bakery_flow())
        async with CallClient(url) as call:
            await call.wait_event("agent_speech_ended", timeout=120)
            assert "bakery" in await voices.hear(call.agent_audio(), call.out_rate)
            assert actors.stats["warm"] == 1
            actor = host.calls[str(session_id)].actor
            pid = await actor.warm.remote()
            ray.kill(actor, no_restart=False)
            killed = time.monotonic()
            await call.wait_event("resumed", after=killed, timeout=300)
            assert await actor.warm.remote() != pid

            spoke = await call.say(await voices.caller("What are your hours?"))
            await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
            heard = await voices.hear(call.agent_audio(since=spoke), call.out_rate)
            assert says_the_hours(heard), heard
        turns = await pool.fetch("SELECT role, text FROM transcript_turns WHERE session_id = $1"
                                 " ORDER BY seq", session_id)
        assert [t["role"] for t in turns] == ["assistant", "user", "assistant"]
        assert "hours" in turns[1]["text"].lower()
    finally:
        extras["voice_host"] = local_host
        await actors.aclose()
