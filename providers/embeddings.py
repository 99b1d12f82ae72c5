"""The embeddings interface: texts in, unit-length vectors of `dimensions` floats out."""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from providers.policy import CallPolicy, call_with_retries

log = logging.getLogger("aico.providers.embeddings")


@dataclass(frozen=True)
class EmbeddingsCapabilities:
    max_batch: int = 64
    # Vectors come back L2-normalised, so cosine similarity is a dot product.
    normalized: bool = True


@dataclass
class EmbeddingsUsageTotals:
    requests: int = 0
    texts: int = 0
    characters: int = 0
    retries: int = 0


class Embeddings(ABC):
    kind: ClassVar[str] = ""
    capabilities: ClassVar[EmbeddingsCapabilities] = EmbeddingsCapabilities()

    def __init__(self, *, dimensions: int, policy: CallPolicy | None = None) -> None:
        self.dimensions = dimensions
        self.policy = policy or CallPolicy(timeout_s=30.0)
        self.usage = EmbeddingsUsageTotals()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; large inputs are sent in batches."""
        out: list[list[float]] = []
        size = self.capabilities.max_batch
        for i in range(0, len(texts), size):
            batch = texts[i:i + size]
            self.usage.requests += 1
            self.usage.texts += len(batch)
            self.usage.characters += sum(len(t) for t in batch)
            out.extend(await call_with_retries(functools.partial(self._embed_impl, batch),
                                               policy=self.policy, provider=self.kind,
                                               what="embed", on_retry=self._count_retry))
        return out

    def _count_retry(self) -> None:
        self.usage.retries += 1

    @abstractmethod
    async def _embed_impl(self, texts: list[str]) -> list[list[float]]:
        """Embed one batch; raise ProviderError subclasses on failure."""

    async def aclose(self) -> None:
        """Release connections; the base holds none."""
