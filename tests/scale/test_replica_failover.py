"""A model replica killed mid-request loses no turn (issue 16).

A session reaches the STT, TTS and LLM deployments through `providers.serve_clients`. Here the
deployment behind those clients is a small stand-in with two replicas, in its own Serve app (the
shared `models` app is left alone): it answers like the models do (a transcript, a stream of
audio frames, a stream of tokens), except that the first request of each kind records which
replica took it and then hangs. The test kills that replica's actor (`ray.kill`, as a crashed
worker or a lost node would) while the request is in flight, and checks what the session's
provider hands back: the whole transcript, every audio sample exactly once (the resumed
synthesis skips what was already delivered), the whole reply when no token had been sent, and
the delivered tokens marked `interrupted` when some had.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from aico import metrics
from providers.llm import FINISH_INTERRUPTED, ChatLLM, ChatMessage, LLMChunk
from providers.registry import parse_config
from providers.serve_clients import serve_client
from providers.stt import Transcript
from providers.tts import AudioFrame

APP = "replica-failover-test"
FRAMES, FRAME_SAMPLES, HOLD_AT_FRAME = 8, 320, 3
REPLY = ["We open ", "at seven ", "in the ", "morning."]
HOLD_AFTER_TOKENS = 2


class FlakyModel:
    """The stand-in deployment (two replicas; Serve's decorator is applied in the fixture)."""

    def __init__(self, latch_dir: str) -> None:
        self.latch = Path(latch_dir)

    def _takes_the_fall(self, request: str) -> bool:
        """The first replica to get `request` records its actor and hangs; others answer."""
        import ray

        try:
            fd = os.open(self.latch / request, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, ray.get_runtime_context().get_actor_name().encode())
        os.close(fd)
        return True

    async def _hang(self) -> None:
        await asyncio.Event().wait()  # until the test kills this replica

    def sample_rate(self) -> int:
        return 16000

    def model_key(self) -> list[str]:
        return ["flaky"]

    async def recognize(self, pcm16: bytes, sample_rate: int, language: str | None) -> Transcript:
        if self._takes_the_fall("recognize"):
            await self._hang()
        return Transcript(text="what time do you open", language=language,
                          audio_s=len(pcm16) / (2 * sample_rate))

    async def synthesize(self, text: str, slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        falls = self._takes_the_fall("synthesize")
        for i in range(FRAMES):
            if falls and i == HOLD_AT_FRAME:
                await self._hang()
            yield AudioFrame(pcm16=frame_pcm(i), sample_rate=16000)

    async def chat(self, messages: list[dict[str, Any]], tools: Any, response_format: Any,
                   temperature: Any, max_tokens: Any, spoken: bool = False,
                   ) -> AsyncIterator[LLMChunk]:
        when = messages[-1]["content"]  # "before" or "after": the first token
        falls = self._takes_the_fall(f"chat-{when}")
        for i, text in enumerate(REPLY):
            if falls and i == (0 if when == "before" else HOLD_AFTER_TOKENS):
                await self._hang()
            yield LLMChunk(text=text)
        yield LLMChunk(finish_reason="stop")


def frame_pcm(i: int) -> bytes:
    return bytes([i, 0]) * FRAME_SAMPLES


@pytest.fixture(scope="module")
def flaky(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ray import cloudpickle, serve

    # The replicas cannot import a test module by name: ship the class by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    latch = tmp_path_factory.mktemp("latch")
    deployment = serve.deployment(FlakyModel, name="flaky", num_replicas=2,
                                  ray_actor_options={"num_cpus": 0})
    serve.run(deployment.bind(str(latch)), name=APP, route_prefix=None)
    yield latch, serve.get_deployment_handle("flaky", app_name=APP)
    serve.delete(APP)
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


async def kill_the_replica_holding(latch: Path, request: str) -> None:
    """Wait (bounded) until a replica holds `request`, then kill its actor."""
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    deadline = time.monotonic() + 60
    while not (latch / request).exists() or not (latch / request).read_text():
        assert time.monotonic() < deadline, f"no replica took the {request} request"
        await asyncio.sleep(0.05)
    replica = ray.get_actor((latch / request).read_text(), namespace=SERVE_NAMESPACE)
    ray.kill(replica, no_restart=True)


def replica_losses(provider: str, operation: str) -> float:
    errors = metrics.STORE.snapshot()["aico_provider_errors"]
    return errors.get((provider, operation, "replica_lost"), 0.0)


async def client(capability: str, kind: str, handle: Any) -> Any:
    spec, config = parse_config(capability, {"kind": kind})
    return await serve_client(capability, spec.load_class(), config, handle)


async def test_a_transcription_in_flight_on_a_killed_replica_is_answered(flaky):
    latch, handle = flaky
    stt = await client("stt", "faster-whisper", handle)
    lost_before = replica_losses(stt.kind, "recognize")

    asked = asyncio.create_task(stt.recognize(b"\x01\x00" * 16000, sample_rate=16000))
    await kill_the_replica_holding(latch, "recognize")
    transcript = await asyncio.wait_for(asked, 60)

    assert transcript.text == "what time do you open" and transcript.audio_s == 1.0
    # Operators see the loss on /metrics; it was sent again once, not left to time out.
    assert replica_losses(stt.kind, "recognize") == lost_before + 1


async def test_a_sentence_half_played_when_its_replica_dies_carries_on_without_repeating(flaky):
    latch, handle = flaky
    tts = await client("tts", "piper", handle)
    lost_before = replica_losses(tts.kind, "synthesize")
    played: list[AudioFrame] = []

    async def play() -> None:
        async for frame in tts.synthesize("We open at seven in the morning."):
            played.append(frame)

    playing = asyncio.create_task(play())
    await kill_the_replica_holding(latch, "synthesize")
    assert len(played) <= HOLD_AT_FRAME  # the kill came mid-sentence
    await asyncio.wait_for(playing, 60)

    # Every sample of the sentence, in order, once: the frames already played were skipped.
    assert b"".join(f.pcm16 for f in played) == b"".join(frame_pcm(i) for i in range(FRAMES))
    assert replica_losses(tts.kind, "synthesize") == lost_before + 1


async def reply(llm: ChatLLM, when: str) -> list[LLMChunk]:
    return [chunk async for chunk in llm.chat([ChatMessage(role="user", content=when)])]


async def test_a_reply_whose_replica_dies_before_its_first_token_is_asked_again(flaky):
    latch, handle = flaky
    llm = await client("llm", "llamacpp", handle)
    lost_before = replica_losses(llm.kind, "chat")

    answering = asyncio.create_task(reply(llm, "before"))
    await kill_the_replica_holding(latch, "chat-before")
    chunks = await asyncio.wait_for(answering, 60)

    assert "".join(c.text for c in chunks) == "".join(REPLY)
    assert chunks[-1].finish_reason == "stop"
    assert replica_losses(llm.kind, "chat") == lost_before + 1


async def test_a_reply_whose_replica_dies_after_tokens_ends_with_them_as_interrupted(flaky):
    latch, handle = flaky
    llm = await client("llm", "llamacpp", handle)
    lost_before = replica_losses(llm.kind, "chat")

    answering = asyncio.create_task(reply(llm, "after"))
    await kill_the_replica_holding(latch, "chat-after")
    chunks = await asyncio.wait_for(answering, 60)

    # What the caller already heard stands; nothing is repeated or made up after it.
    assert "".join(c.text for c in chunks) == "".join(REPLY[:HOLD_AFTER_TOKENS])
    assert chunks[-1].finish_reason == FINISH_INTERRUPTED
    assert replica_losses(llm.kind, "chat") == lost_before + 1


async def test_sessions_look_up_the_models_app_off_the_event_loop_and_once(ray_cluster,
                                                                          monkeypatch):
    """The lookup that decides where a session's models run asks the Serve controller in a
    thread (the loop carries live calls), and once for sessions that open together."""
    from ray import serve

    from providers import runtime

    asked_from: list[str] = []
    status = serve.status

    def watched_status() -> Any:
        try:
            asyncio.get_running_loop()
            asked_from.append("the event loop")
        except RuntimeError:
            asked_from.append("a thread")
        return status()

    monkeypatch.setattr(serve, "status", watched_status)
    runtime.forget_models()
    try:
        found = await asyncio.gather(*(runtime._serve_lookup("stt") for _ in range(5)))
        again = await runtime._serve_lookup("stt")  # within the TTL: from the cache
    finally:
        runtime.forget_models()
    assert asked_from == ["a thread"]
    assert all(f == found[0] for f in found) and again == found[0]
