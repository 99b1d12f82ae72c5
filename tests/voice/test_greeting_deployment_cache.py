"""A published flow's greeting is synthesized into the TTS deployment's cache when the flow is
published, before any call: a call whose process has never spoken it (a fresh call actor) plays
it from there without a synthesis. The models run on Ray Serve here (`AICO_MODELS=serve`); the
call's pipeline runs in the test's API process, whose own greeting cache (the first level) is
emptied before each call, as a fresh actor's is.

What the deployment did is read from the deployment itself (`greeting_stats`: texts it
synthesized, cache hits); what the call asked of its TTS from the session's stored usage."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

import pytest
from test_greeting_cache import greeted_call, greeting_flow
from voice_api import publish_flow

from actors.speech_out import from_onset, greeting_cache, say_pieces


@pytest.fixture(scope="module")
def tts_on_serve(models_on_serve: None) -> Any:
    """A handle on the `models` app's TTS deployment (tests/voice/conftest.py deploys it)."""
    from ray import serve

    return serve.get_deployment_handle("tts", app_name="models")


async def held_audio(tts: Any, text: str) -> bytes | None:
    """The greeting's audio as the deployment holds it (None if any piece is missing), each
    piece from its voice's onset, as a call plays it."""
    pieces = [await tts.greeting.remote(piece) for piece in say_pieces(text)]
    if any(p is None for p in pieces):
        return None
    rate = await tts.sample_rate.remote()
    return b"".join(from_onset(p, rate) or b"" for p in pieces)


async def held_soon(tts: Any, text: str, *, timeout: float = 60.0) -> bytes:
    """The greeting's audio once the deployment holds it. Publishing waits a few seconds for
    it, then lets it finish in the background (a busy machine): wait for that, not a guess."""
    deadline = time.monotonic() + timeout
    while (audio := await held_audio(tts, text)) is None:
        assert time.monotonic() < deadline, f"{text!r} was not cached"
        await asyncio.sleep(0.1)
    return audio


async def test_a_published_greeting_is_played_on_a_fresh_actor_without_synthesis(
        api, voice_server, voices, tts_on_serve):
    tts = tts_on_serve
    number = secrets.randbelow(9000) + 1000
    greeting = f"Thank you for calling the river bakery, caller {number}. How can I help?"
    flow_id = await publish_flow(api, greeting_flow(greeting))

    # Publishing put it in the deployment's cache: before any call.
    held = await held_soon(tts, greeting)
    before = await tts.greeting_stats.remote()

    greeting_cache.clear()  # the call's process has never spoken it: a fresh actor
    audio, rate, requests = await greeted_call(api, voice_server, flow_id)
    after = await tts.greeting_stats.remote()
    assert requests == 0  # the session's TTS synthesized nothing
    assert after["synthesized"] == before["synthesized"]  # nor did the deployment
    assert after["hits"] >= before["hits"] + len(say_pieces(greeting))
    # What the caller heard is the cached audio, and it is the greeting.
    assert audio.rstrip(b"\0") == held.rstrip(b"\0")
    heard = await voices.hear(audio, rate)
    assert "bakery" in heard or "river" in heard, heard


async def test_a_changed_greeting_is_not_served_stale_after_a_new_publish(
        api, voice_server, voices, tts_on_serve):
    tts = tts_on_serve
    number = secrets.randbelow(9000) + 1000
    old = f"Welcome to the harbour bakery, caller {number}."
    new = f"Good morning from the mountain cafe, caller {number}."
    flow_id = await publish_flow(api, greeting_flow(old))
    old_audio = await held_soon(tts, old)

    # The draft's greeting changes; the new version is published.
    r = await api.get(f"/v1/flows/{flow_id}")
    assert r.status_code == 200, r.text
    flow = r.json()
    r = await api.put(f"/v1/flows/{flow_id}", json={
        "document": greeting_flow(new), "draft_revision": flow["draft_revision"]})
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/flows/{flow_id}/publish")
    assert r.status_code == 201, r.text
    new_audio = await held_soon(tts, new)

    greeting_cache.clear()
    before = await tts.greeting_stats.remote()
    audio, rate, requests = await greeted_call(api, voice_server, flow_id)
    assert requests == 0
    assert (await tts.greeting_stats.remote())["synthesized"] == before["synthesized"]
    assert audio.rstrip(b"\0") == new_audio.rstrip(b"\0")
    assert audio.rstrip(b"\0") != old_audio.rstrip(b"\0")
    heard = await voices.hear(audio, rate)
    assert "mountain" in heard or "cafe" in heard or "café" in heard, heard
    assert "harbour" not in heard and "harbor" not in heard, heard


async def test_what_a_call_synthesized_is_kept_for_the_next_fresh_actor(
        api, voice_server, tts_on_serve):
    """A greeting the deployment did not hold (rendered per call, evicted, or held by another
    replica) is kept once a call has synthesized it: the next fresh actor plays it from there."""
    tts = tts_on_serve
    number = secrets.randbelow(9000) + 1000
    # A template is rendered per call: publishing cannot cache it; the first call does.
    flow_id = await publish_flow(api, greeting_flow(
        f"Hello, this is the station bakery, ticket {{{{ '{number}' }}}}."))
    spoken = f"Hello, this is the station bakery, ticket {number}."
    assert await held_audio(tts, spoken) is None

    greeting_cache.clear()
    _, _, first_requests = await greeted_call(api, voice_server, flow_id)
    assert first_requests >= 1  # synthesized by the call
    await held_soon(tts, spoken)  # handed over by the call (without waiting for it)
    greeting_cache.clear()
    before = await tts.greeting_stats.remote()
    _, _, second_requests = await greeted_call(api, voice_server, flow_id)
    assert second_requests == 0
    assert (await tts.greeting_stats.remote())["synthesized"] == before["synthesized"]


async def test_the_deployments_greeting_cache_holds_its_bound() -> None:
    """Bounded by bytes: filling it with more greetings than fit keeps it within the bound,
    the newest held and the oldest gone."""
    from serve_apps.models.tts import TTSDeployment

    # About 1.2 s of 22 kHz speech each (≈53 kB): 16 of them do not fit in 600 kB.
    replica = TTSDeployment.func_or_class(  # type: ignore[attr-defined]  # a Deployment
        {"kind": "piper"}, greeting_cache_bytes=600_000)
    texts = [f"Welcome, caller {n}." for n in range(1, 17)]
    made = await replica.cache_greetings(texts)
    assert made == len(texts)
    stats = replica.greeting_stats()
    assert stats["max_bytes"] == 600_000
    assert 0 < stats["bytes"] <= 600_000
    assert 0 < stats["items"] < len(texts)  # some went to make room
    assert await replica.greeting(texts[-1]) is not None
    assert await replica.greeting(texts[0]) is None
    # Asking again for what it holds synthesizes nothing.
    assert await replica.cache_greetings(texts[-1:]) == 0


async def test_a_session_does_not_wait_for_serves_controller_to_reach_its_tts(
        tts_on_serve, monkeypatch):
    """Where a session's TTS runs is looked up from Serve's controller, which on a busy machine
    took 150-230 ms of a call's connect. Once the lookup has aged, a session still gets the
    deployment found before at once, and the controller is asked again in the background."""
    from ray import serve

    from providers import runtime

    runtime.forget_models()
    handle, key = await runtime._serve_lookup("tts")
    assert handle is not None and key
    answered = threading.Event()  # the controller answers only when the test says so
    asked: list[str] = []
    status = serve.status

    def slow_status() -> Any:
        asked.append("status")
        answered.wait(60)
        return status()

    monkeypatch.setattr(serve, "status", slow_status)
    monkeypatch.setattr(runtime, "_SERVE_CHECK_TTL_S", 0.0)  # every lookup has aged
    try:
        lookup = asyncio.create_task(runtime._serve_lookup("tts"))
        done, _ = await asyncio.wait({lookup}, timeout=30)
        assert lookup in done, "the session waited for the controller"
        assert lookup.result() == (handle, key)
        deadline = time.monotonic() + 30
        while not asked:  # the re-check went to the controller meanwhile
            assert time.monotonic() < deadline, "the aged lookup was not checked again"
            await asyncio.sleep(0.02)
    finally:
        answered.set()
        runtime.forget_models()


async def test_aico_up_caches_the_greetings_published_before_it_started(
        make_org, pool, tts_on_serve):
    """A flow published while the server was down (stored, never synthesized): the start-up
    fill (`aico up` runs it in the background with the owner's connection) caches it."""
    from db import flows as flows_db
    from serve_apps.greetings import cache_every_published_greeting

    tts = tts_on_serve
    org = await make_org()
    number = secrets.randbelow(9000) + 1000
    greeting = f"Good evening from the night bakery, caller {number}."
    row = await flows_db.insert_flow(pool, org_id=org.id, name="stored", description="",
                                     document=greeting_flow(greeting))
    await flows_db.insert_flow_version(pool, org_id=org.id, flow_id=row["id"],
                                       document=greeting_flow(greeting))
    assert await held_audio(tts, greeting) is None

    # The newest flows only: the test database holds every other test's flows too.
    assert await cache_every_published_greeting(pool, limit=3) >= len(say_pieces(greeting))
    assert await held_audio(tts, greeting) is not None
