"""The speech-to-text deployment: one Whisper (or other self-hosted STT) per replica.

Requests from many calls are batched (`@serve.batch`): CTranslate2 decodes a batch of
utterances in one `generate` call, so eight callers finishing a turn together wait for one
decode rather than queueing for eight. A request that arrives while others are waiting or
decoding waits at most `BATCH_WAIT_S` for company; a lone one (a single caller's turn, the
common case on a quiet node) starts at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from providers.faster_whisper_stt import FasterWhisperSTT
from providers.runtime import load_provider_sync
from providers.stt import Transcript

MAX_BATCH = 8
BATCH_WAIT_S = 0.01

Request = tuple[bytes, int, str | None]  # PCM16, sample rate, language


@serve.deployment(name="stt", max_ongoing_requests=2 * MAX_BATCH)
class STTDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("stt", config)
        self._provider.warm_up()  # the first call allocates: pay it before traffic arrives
        self._requests = 0
        self._batches = 0
        self._largest_batch = 0
        self._in_flight = 0

    async def recognize(self, pcm16: bytes, sample_rate: int,
                        language: str | None = None) -> Transcript:
        # The calling provider object owns retries and timeouts; a replica only decodes.
        # The batch queue reads the wait when a batch's first request comes out of it.
        batched: Any = self._recognize_batched  # serve.batch's wrapper
        batched.set_batch_wait_timeout_s(BATCH_WAIT_S if self._in_flight else 0.0)
        self._in_flight += 1
        try:
            return await batched((pcm16, sample_rate, language))
        finally:
            self._in_flight -= 1

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _recognize_batched(self, requests: list[Request]) -> list[Transcript]:
        self._requests += len(requests)
        self._batches += 1
        self._largest_batch = max(self._largest_batch, len(requests))
        provider = self._provider
        if not isinstance(provider, FasterWhisperSTT):  # a model without batch decoding
            return list(await asyncio.gather(*(
                provider._recognize_impl(pcm16, sample_rate=rate, language=language)
                for pcm16, rate, language in requests)))
        results: list[Transcript | None] = [None] * len(requests)
        for language in dict.fromkeys(r[2] for r in requests):
            picked = [i for i, r in enumerate(requests) if r[2] == language]
            decoded = await provider.recognize_batch(
                [(requests[i][0], requests[i][1]) for i in picked],
                language or provider.language)
            for i, transcript in zip(picked, decoded, strict=True):
                results[i] = transcript
        return [r if r is not None else Transcript(text="") for r in results]

    def batch_stats(self) -> dict[str, int]:
        """Requests and batches decoded since start: how much batching the traffic allows."""
        return {"requests": self._requests, "batches": self._batches,
                "largest_batch": self._largest_batch}

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        # Cheap on purpose: Serve calls it every few seconds, and a decode costs CPU.
        if self._provider.config is None:
            raise RuntimeError("stt model not loaded")
