"""`openai-compatible` against a real llama.cpp OpenAI-compatible HTTP server on loopback.

xllamacpp's `Server` is llama.cpp's own server: besides the in-process API it listens on
127.0.0.1 (`listening_address`) with /v1/chat/completions, so the adapter is tested over real
HTTP + SSE, the same path it takes to vLLM or Ollama.
"""

from __future__ import annotations

import json

import pytest

from providers.errors import ProviderUnavailable
from providers.llm import ChatMessage
from providers.runtime import open_llm

pytestmark = pytest.mark.slow


@pytest.fixture
async def remote_llm(smollm):
    llm = await open_llm({"kind": "openai-compatible", "model": "smollm2", "temperature": 0.0,
                          "base_url": smollm.listening_address + "/v1"}, secrets={})
    yield llm
    await llm.aclose()


async def test_streams_tokens_over_http(remote_llm):
    chunks = [c async for c in remote_llm.chat(
        [ChatMessage(role="user", content="Say hello to Bob.")], max_tokens=30)]
    assert len([c for c in chunks if c.text]) > 3
    assert "".join(c.text for c in chunks).strip()
    assert remote_llm.usage.completion_tokens > 0  # stream_options.include_usage honoured


async def test_json_schema_is_honoured_over_http(remote_llm):
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    result = await remote_llm.complete(
        [ChatMessage(role="user", content="I live in Paris. Which city?")],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        max_tokens=30)
    assert isinstance(json.loads(result.text)["city"], str)


async def test_unreachable_server_is_retried_then_reported():
    llm = await open_llm({"kind": "openai-compatible", "model": "m", "max_retries": 2,
                          "base_url": "http://127.0.0.1:9/v1"}, secrets={})
    with pytest.raises(ProviderUnavailable, match="connection failed"):
        await llm.complete([ChatMessage(role="user", content="hi")])
    assert llm.usage.retries == 2
