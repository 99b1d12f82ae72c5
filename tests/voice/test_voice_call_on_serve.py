"""The same call with the models on Ray Serve: the other voice modules pin the models in the
API process (`AICO_MODELS=inprocess`); this one pins `serve`, where the call's STT and TTS are
Serve deployment handles of the `models` app (and opening them fails if it is not running), so
both paths are run explicitly rather than by the luck of test order."""

from __future__ import annotations

from test_voice_call import voice_session
from voice_api import transcript, wait_status
from voice_call_client import CallClient, agent_lines, user_lines
from voice_flows import GREETING, HOURS, bakery_flow


# The configs tests/providers' `serve_models` fixture deploys, so whichever runs first, the
# other finds the same app and a redeploy changes nothing.
async def test_a_call_with_the_models_on_serve(api, voice_server, voices, models_on_serve):
    session_id, url = await voice_session(api, voice_server, bakery_flow())
    async with CallClient(url) as call:
        assert call.out_rate == 22050
        await call.wait_event("agent_speech_ended", timeout=120)
        assert "bakery" in await voices.hear(call.agent_audio(), call.out_rate)
        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
        assert agent_lines(call) == [GREETING, HOURS]
        heard = user_lines(call)
        assert len(heard) == 1 and "hours" in heard[0].lower()
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", HOURS)]
    assert record["metrics"]["usage"]["stt"]["requests"] >= 1


async def test_a_new_call_process_warms_its_routes_without_model_work(models_on_serve):
    """A voice actor warms its providers before its first call; with the models on Serve that
    means the routes to the deployments, not a decode or a synthesis (a pool refilling while
    eight calls are live spent ≈300 ms of Whisper CPU per new actor on half a second of
    silence). The deployments' own counters say what they did."""
    from ray import serve

    from actors.call_providers import warm_default_providers
    from providers.serve_clients import ServeSTT, ServeTTS

    stt = serve.get_deployment_handle("stt", app_name="models")
    tts = serve.get_deployment_handle("tts", app_name="models")
    decoded = (await stt.batch_stats.remote())["requests"]
    synthesized = (await tts.greeting_stats.remote())["synthesized"]

    stt_client, tts_client = await warm_default_providers(llm=True)

    assert isinstance(stt_client, ServeSTT) and isinstance(tts_client, ServeTTS)
    assert (await stt.batch_stats.remote())["requests"] == decoded
    assert (await tts.greeting_stats.remote())["synthesized"] == synthesized
