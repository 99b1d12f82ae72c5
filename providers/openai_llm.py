"""LLM `openai-compatible` and `openai`: chat completions through the official `openai` client.

`openai-compatible` points it at any server that speaks the API (vLLM's, Ollama's, llama.cpp's
server); `openai` is the same adapter with OpenAI's defaults and a required API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.configs import OpenAICompatibleConfig, OpenAILLMConfig
from providers.errors import ProviderError
from providers.llm import ChatLLM, ChatMessage, LLMCapabilities, LLMChunk
from providers.openai_client import make_client, provider_error
from providers.openai_wire import ChunkDecoder, chat_request


class OpenAICompatibleLLM(ChatLLM):
    kind = "openai-compatible"
    capabilities = LLMCapabilities(streaming=True, tools=True, json_schema=True)

    def __init__(self, config: OpenAICompatibleConfig | OpenAILLMConfig, *, client: Any) -> None:
        super().__init__(policy=config.policy())
        self.config = config
        self._client = client
        if isinstance(config, OpenAICompatibleConfig) and not config.tools:
            # This server takes no tools: narrower than the class's declared capabilities.
            self.capabilities = LLMCapabilities(  # type: ignore[misc]
                streaming=True, tools=False, json_schema=True)

    @classmethod
    def from_config(cls, config: OpenAICompatibleConfig | OpenAILLMConfig, *,
                    secrets: Mapping[str, str]) -> OpenAICompatibleLLM:
        return cls(config, client=make_client(
            base_url=config.base_url, api_key_secret=config.api_key_secret, secrets=secrets,
            timeout_s=config.timeout_s))

    @property
    def model_id(self) -> str:
        """The model name sent in each request."""
        return self.config.model

    async def _chat_impl(self, messages: list[ChatMessage], *, tools: list[dict] | None,
                         response_format: dict | None, temperature: float | None,
                         max_tokens: int | None, spoken: bool = False,
                         ) -> AsyncIterator[LLMChunk]:
        body = chat_request(
            messages, model=self.model_id, tools=tools, response_format=response_format,
            temperature=self.config.temperature if temperature is None else temperature,
            max_tokens=max_tokens or self.config.max_tokens)
        decoder = ChunkDecoder()
        try:
            stream = await self._client.chat.completions.create(**body)
            async with stream:
                async for chunk in stream:
                    decoded = decoder.decode(chunk.model_dump(exclude_none=True))
                    if decoded is not None:
                        yield decoded
        except ProviderError:
            raise
        except Exception as err:  # noqa: BLE001 - every client failure becomes a typed error
            # `from None`: the client's exception holds the request, headers and key included.
            raise provider_error(err, provider=self.kind) from None

    async def aclose(self) -> None:
        await self._client.close()


class OpenAILLM(OpenAICompatibleLLM):
    kind = "openai"
