"""Publishing a flow readies its first reply too: the prompt an `llm` node sends on a call's
first turn begins, on every call, with the same system message and greeting, and the `models`
app's LLM has read that prefix before any caller asks anything. The first caller's question
then costs llama.cpp only its own words (it reports how many prompt tokens came from its cache).

The models run on Ray Serve (the `models` app as tests/voice/conftest.py deploys it); the
instructions are unique to the test, so nothing else could have cached them."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from voice_api import publish_flow

from flows.llm_context import CHANNEL_HINTS
from providers.configs import LlamaCppConfig
from serve_apps.greetings import WARM_USER_TEXT, first_turn_prompts

# llama.cpp's slots: tests/voice/conftest.py deploys the `models` app with the default.
SLOTS = LlamaCppConfig.model_fields["n_parallel"].default
GREETING = "Hello, this is the corner bakery. What would you like to know?"


def bakery_llm_flow(instructions: str) -> dict[str, Any]:
    return {"name": "first-turn", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "hello", "type": "say", "text": GREETING},
        {"id": "hear", "type": "listen"},
        {"id": "answer", "type": "llm", "instructions": instructions, "max_tokens": 4},
        {"id": "bye", "type": "end"}],
        "edges": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "hear"},
                  {"from": "hear", "to": "answer"}, {"from": "answer", "to": "bye"}]}


async def test_a_published_flows_first_turn_prompt_is_read_before_any_call(api, models_on_serve):
    from ray import serve

    llm = serve.get_deployment_handle("llm", app_name="models")
    instructions = (f"You answer the phone for bakery number {secrets.token_hex(6)}. "
                    + " ".join(f"Rule {i}: be brief and kind about bread." for i in range(12)))
    document = bakery_llm_flow(instructions)
    before = await settled(llm)  # what earlier publishes read into the slots is done
    await publish_flow(api, document)

    # The prefix is read in the background after the greeting, into every slot: wait for all
    # of those reads (a pause between two of them is no sign that they are done).
    deadline = time.monotonic() + 120
    while (await llm.prompt_cache_stats.remote())["requests"] - before["requests"] < SLOTS:
        assert time.monotonic() < deadline, "the first turn's prompt was never read"
        await asyncio.sleep(0.2)
    await settled(llm)  # the counters below are the question's alone

    # The first caller's question: the prompt a call sends, with the caller's words.
    [prompt] = first_turn_prompts(document)
    assert [m["role"] for m in prompt] == ["system", "assistant", "user"]
    assert prompt[0]["content"].startswith(CHANNEL_HINTS["voice"])  # every voice prompt's start
    assert prompt[0]["content"].endswith(instructions) and prompt[1]["content"] == GREETING
    assert prompt[2]["content"] == WARM_USER_TEXT
    question = [*prompt[:2], {"role": "user", "content": "When do you open tomorrow?"}]
    start = await llm.prompt_cache_stats.remote()
    async for _ in llm.options(stream=True).chat.remote(question, max_tokens=1):
        pass
    end = await llm.prompt_cache_stats.remote()
    read = end["prompt_tokens"] - start["prompt_tokens"]
    cached = end["cached_tokens"] - start["cached_tokens"]
    assert read > 150  # the instructions are long ...
    assert cached >= read - 30, (read, cached)  # ... and only the caller's words were new


async def test_every_slot_has_read_the_voice_hint_that_every_voice_prompt_starts_with(
        models_on_serve):
    """Callers of a flow nobody has called yet (not even published), asking at once, one per
    llama.cpp slot: each turn's prompt begins with the voice channel's hint, which the LLM
    deployment read into every slot when it started, so each reads only its flow's
    instructions and its question."""
    from ray import serve

    from flows.document import LLMNode
    from flows.llm_context import llm_messages

    llm = serve.get_deployment_handle("llm", app_name="models")
    deadline = time.monotonic() + 120
    while not await llm.slots_warmed.remote():
        assert time.monotonic() < deadline, "the slots were never warmed"
        await asyncio.sleep(0.2)
    node = LLMNode.model_validate({
        "id": "answer", "type": "llm", "history": False,
        "instructions": f"You answer for the flower shop number {secrets.token_hex(6)}."})
    # The hint with the chat template's system header is ≈ 49 tokens of SmolLM2's vocabulary:
    # a slot that had to read it again would leave at most 7 × 49 < 8 × 45 cached.
    hint_tokens = 45

    read, cached = await eight_at_once(llm, lambda i: llm_messages(
        node, variables={}, channel="voice",
        history=[{"role": "user", "content": f"Are the tulips fresh today, {i}?"}]))
    assert read > SLOTS * (hint_tokens + 20)  # the hint, the instructions and the question
    assert cached >= SLOTS * hint_tokens, (read, cached)  # the hint came from the cache every time


async def test_eight_first_callers_at_once_each_read_only_their_words(api, models_on_serve):
    """The published flow's first-turn prompt is read into every slot, so the first callers
    of a flow asking at once (one per slot) each find it, whichever slot they get."""
    from ray import serve

    llm = serve.get_deployment_handle("llm", app_name="models")
    instructions = (f"You answer the phone for bakery number {secrets.token_hex(6)}. "
                    + " ".join(f"Rule {i}: be brief and kind about cakes." for i in range(12)))
    document = bakery_llm_flow(instructions)
    [prompt] = first_turn_prompts(document)
    before = await settled(llm)  # what earlier publishes read into the slots is done
    await publish_flow(api, document)
    deadline = time.monotonic() + 120
    while (await llm.prompt_cache_stats.remote())["requests"] - before["requests"] < SLOTS:
        assert time.monotonic() < deadline, "the first turn's prompt was not read into the slots"
        await asyncio.sleep(0.2)
    await settled(llm)

    read, cached = await eight_at_once(llm, lambda i: [
        *prompt[:2], {"role": "user", "content": f"Is the lemon cake fresh, {i}?"}])
    assert read > SLOTS * 150
    assert cached >= read - SLOTS * 30, (read, cached)  # each read only its question


async def settled(llm: Any, quiet_s: float = 1.0) -> dict[str, int]:
    """The LLM's prompt counters once they have not moved for `quiet_s`."""
    deadline = time.monotonic() + 120
    stats = await llm.prompt_cache_stats.remote()
    while True:
        await asyncio.sleep(quiet_s)
        now = await llm.prompt_cache_stats.remote()
        if now == stats:
            return now
        assert time.monotonic() < deadline, "the LLM never went quiet"
        stats = now


async def eight_at_once(llm: Any, question: Callable[[int], list[dict[str, str]]]
                        ) -> tuple[int, int]:
    """A question per slot, all at once: the prompt tokens
    llama.cpp read for them, and how many of those came from its cache."""
    async def ask(i: int) -> None:
        async for _ in llm.options(stream=True).chat.remote(question(i), max_tokens=1):
            pass

    start = await llm.prompt_cache_stats.remote()
    await asyncio.gather(*(ask(i) for i in range(SLOTS)))
    end = await llm.prompt_cache_stats.remote()
    return (end["prompt_tokens"] - start["prompt_tokens"],
            end["cached_tokens"] - start["cached_tokens"])
