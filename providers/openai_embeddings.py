"""Embeddings `openai`: OpenAI's embeddings endpoint through the official client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.configs import OpenAIEmbeddingsConfig
from providers.embeddings import Embeddings, EmbeddingsCapabilities
from providers.errors import ProviderError
from providers.openai_client import make_client, provider_error


class OpenAIEmbeddings(Embeddings):
    kind = "openai"
    capabilities = EmbeddingsCapabilities(max_batch=256, normalized=True)

    def __init__(self, config: OpenAIEmbeddingsConfig, *, client: Any) -> None:
        super().__init__(dimensions=config.dimensions, policy=config.policy())
        self.config = config
        self._client = client

    @classmethod
    def from_config(cls, config: OpenAIEmbeddingsConfig, *,
                    secrets: Mapping[str, str]) -> OpenAIEmbeddings:
        return cls(config, client=make_client(base_url=config.base_url,
                                              api_key_secret=config.api_key_secret,
                                              secrets=secrets, timeout_s=config.timeout_s))

    async def _embed_impl(self, texts: list[str]) -> list[list[float]]:
        options: dict[str, Any] = {"model": self.config.model, "input": texts}
        if self.config.model.startswith("text-embedding-3"):
            options["dimensions"] = self.config.dimensions
        try:
            result = await self._client.embeddings.create(**options)
        except ProviderError:
            raise
        except Exception as err:  # noqa: BLE001 - typed; the client holds the key
            raise provider_error(err, provider=self.kind) from None
        return [d.embedding for d in sorted(result.data, key=lambda d: d.index)]

    async def aclose(self) -> None:
        await self._client.close()
