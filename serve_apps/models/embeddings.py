"""The embeddings deployment: one MiniLM (or other self-hosted encoder) per replica."""

from __future__ import annotations

from typing import Any

from ray import serve

from providers.runtime import load_provider_sync


@serve.deployment(name="embeddings", max_ongoing_requests=16)
class EmbeddingsDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("embeddings", config)
        self._provider.warm_up()  # the first call allocates: pay it before traffic arrives

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._provider._embed_impl(texts)

    def dimensions(self) -> int:
        return self._provider.dimensions

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        if self._provider.dimensions <= 0:
            raise RuntimeError("embeddings model not loaded")
