"""How a provider call is bounded: timeout, retries before the first result, backoff.

Every base class (STT, TTS, LLM, embeddings) runs its provider hook under a `CallPolicy`;
providers never retry by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aico.metrics import record_provider_call, record_provider_error
from providers.errors import ProviderError, ProviderTimeout

log = logging.getLogger("aico.providers")

T = TypeVar("T")


@dataclass(frozen=True)
class CallPolicy:
    timeout_s: float = 30.0
    # Attempts after the first; only errors marked retryable are retried, and for streams
    # only before the first chunk reached the caller (a half-spoken reply cannot be redone).
    max_retries: int = 2
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_max_s, self.backoff_s * (2**attempt))


async def call_with_retries(fn: Callable[[], Awaitable[T]], *, policy: CallPolicy,
                            provider: str, what: str,
                            on_retry: Callable[[], None] | None = None) -> T:
    """Await `fn()` under the policy's timeout, retrying retryable provider errors."""
    attempt = 0
    started = time.monotonic()
    while True:
        try:
            async with asyncio.timeout(policy.timeout_s):  # keeps a cancellation (llm._next)
                result = await fn()
            record_provider_call(provider, what, time.monotonic() - started)
            return result
        except TimeoutError:
            err: ProviderError = ProviderTimeout(
                f"{provider} {what} took longer than {policy.timeout_s:g}s", provider=provider)
        except ProviderError as exc:
            err = exc
        record_provider_error(provider, what, err.code)
        if not err.retryable or attempt >= policy.max_retries:
            record_provider_call(provider, what, time.monotonic() - started)
            raise err
        log.warning("%s %s failed (%s), retry %d/%d", provider, what, err.code, attempt + 1,
                    policy.max_retries)
        if on_retry is not None:
            on_retry()
        await asyncio.sleep(policy.delay(attempt))
        attempt += 1
