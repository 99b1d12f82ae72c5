"""The chat LLM deployment: one llama.cpp server engine per replica (it batches internally)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from providers.llm import ChatMessage, LLMCapabilities, LLMChunk
from providers.runtime import load_provider_sync


@serve.deployment(name="llm", max_ongoing_requests=16)
class LLMDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("llm", config)

    async def chat(self, messages: list[dict[str, Any]], tools: list[dict] | None = None,
                   response_format: dict | None = None, temperature: float | None = None,
                   max_tokens: int | None = None) -> AsyncIterator[LLMChunk]:
        """Streamed: call with `handle.options(stream=True)`."""
        async for chunk in self._provider._chat_impl(
                [ChatMessage.model_validate(m) for m in messages], tools=tools,
                response_format=response_format, temperature=temperature,
                max_tokens=max_tokens):
            yield chunk

    def capabilities(self) -> LLMCapabilities:
        return self._provider.capabilities

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        if self._provider is None:
            raise RuntimeError("llm not loaded")
