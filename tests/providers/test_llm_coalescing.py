"""The LLM deployment merges tokens that piled up while the last one was in flight."""

from __future__ import annotations

import asyncio

import pytest

from providers.llm import LLMChunk, Usage
from serve_apps.models.llm import coalesce


async def test_a_slow_reader_gets_merged_chunks_and_nothing_is_lost():
    async def fast_model():
        for word in ["Hello", " there", ",", " friend", "."]:
            await asyncio.sleep(0.005)  # a token every 5 ms, like a fast engine
            yield LLMChunk(text=word)
        yield LLMChunk(finish_reason="stop")
        yield LLMChunk(usage=Usage(prompt_tokens=3, completion_tokens=5))

    out = []
    async for chunk in coalesce(fast_model()):
        out.append(chunk)
        await asyncio.sleep(0.03)  # the reader (a Serve round trip) is slower
    assert "".join(c.text for c in out) == "Hello there, friend."
    assert out[0].text == "Hello"  # the first token is never held back
    assert len(out) < 7
    assert out[-1].finish_reason == "stop" and out[-1].usage.completion_tokens == 5


async def test_an_error_mid_stream_reaches_the_reader_after_the_text_before_it():
    async def failing_model():
        yield LLMChunk(text="Par")
        await asyncio.sleep(0)
        raise RuntimeError("engine crashed")

    got = []
    with pytest.raises(RuntimeError, match="engine crashed"):
        async for chunk in coalesce(failing_model()):
            got.append(chunk.text)
    assert got == ["Par"]
