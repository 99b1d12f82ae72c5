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
from typing import Any

from voice_api import publish_flow

from serve_apps.greetings import WARM_USER_TEXT, first_turn_prompts

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
    before = await llm.prompt_cache_stats.remote()
    await publish_flow(api, document)

    # The prefix is read in the background after the greeting: wait for the LLM to have read it.
    deadline = time.monotonic() + 120
    while (await llm.prompt_cache_stats.remote())["prompt_tokens"] == before["prompt_tokens"]:
        assert time.monotonic() < deadline, "the first turn's prompt was never read"
        await asyncio.sleep(0.2)

    # The first caller's question: the prompt a call sends, with the caller's words.
    [prompt] = first_turn_prompts(document)
    assert [m["role"] for m in prompt] == ["system", "assistant", "user"]
    assert prompt[0]["content"].startswith(instructions) and prompt[1]["content"] == GREETING
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
