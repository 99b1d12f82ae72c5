"""The chat LLM deployment: one llama.cpp server engine per replica (it batches internally)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

from ray import serve

from providers.llm import ChatMessage, LLMCapabilities, LLMChunk
from providers.runtime import load_provider_sync

log = logging.getLogger("aico.models.llm")

_END = object()


async def coalesce(chunks: AsyncIterator[LLMChunk]) -> AsyncIterator[LLMChunk]:
    """Yield each chunk as soon as it exists, but merge chunks that piled up while the last one
    was in flight: each streamed item costs a Serve round trip, tokens should not queue."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for chunk in chunks:
                queue.put_nowait(chunk)
        except Exception as err:  # noqa: BLE001 - re-raised to the consumer below
            queue.put_nowait(err)
        finally:
            queue.put_nowait(_END)

    producer = asyncio.create_task(produce())
    try:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and batch[-1] is not _END:
                batch.append(queue.get_nowait())
            ended = batch[-1] is _END
            items = [b for b in batch if b is not _END]
            for item in items:
                if isinstance(item, Exception):
                    raise item
            if items:
                yield _merge(items)
            if ended:
                return
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


def _merge(items: list[LLMChunk]) -> LLMChunk:
    if len(items) == 1:
        return items[0]
    calls = [c for item in items for c in (item.tool_calls or [])]
    usage = next((i.usage for i in reversed(items) if i.usage), None)
    finish = next((i.finish_reason for i in reversed(items) if i.finish_reason), None)
    return LLMChunk(text="".join(i.text for i in items), tool_calls=calls or None, usage=usage,
                    finish_reason=finish)


class BackgroundReading:
    """While the replica reads prompts ahead (slots warmed at start, a published flow's first
    turn) and serves no request, its threads run at idle CPU priority (aico.priority), so a
    call being set up beside it keeps the CPU. Eight slots of a first-turn prompt take one of
    two cores ≈2 s, and the first call after a publish heard its greeting 177-443 ms after
    connecting (7 runs of bench/greeting.py); 108-204 ms with the reading at idle priority (4),
    77-98 ms with no reading at all (3). A request puts the replica back at its normal
    priority at once; the reading goes on beside it.

        with background:          # nested and concurrent readings share one lowering
            provider.read_prompts(prompts)
        with background.serving():
            ...                   # a request, at normal priority
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._requests = 0
        self._low: Any = None

    def __enter__(self) -> Self:
        self._change(readers=1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._change(readers=-1)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        self._change(requests=1)
        try:
            yield
        finally:
            self._change(requests=-1)

    def _change(self, *, readers: int = 0, requests: int = 0) -> None:
        from aico.priority import LowPriority

        with self._lock:
            self._readers += readers
            self._requests += requests
            low = self._readers > 0 and self._requests == 0
            if low and self._low is None:
                self._low = LowPriority(what="the LLM replica's reading ahead")
                self._low.lower()
            elif not low and self._low is not None:
                self._low.restore()
                self._low = None


@serve.deployment(name="llm", max_ongoing_requests=16)
class LLMDeployment:
    def __init__(self, config: dict[str, Any]) -> None:
        self._provider = load_provider_sync("llm", config)
        self._provider.warm_up()  # the first call allocates: pay it before traffic arrives
        # Every voice prompt starts with the voice channel's hint (flows.llm_context): read it
        # into each slot, in the background, so that no turn reads it again (a slot without
        # it read the 107-token bakery prompt in 1-2 s with eight callers at once; with it, 39
        # tokens). Models without slots (no `warm_slots`) have nothing to do.
        self.slots_warm = threading.Event()
        self._background = BackgroundReading()
        threading.Thread(target=self._warm_slots, name="llm-warm-slots", daemon=True).start()

    def _warm_slots(self) -> None:
        from flows.llm_context import CHANNEL_HINTS

        try:
            warm = getattr(self._provider, "warm_slots", None)
            if warm is not None:
                with self._background:
                    warm([CHANNEL_HINTS["voice"]])
        except Exception:  # a turn then reads the hint itself
            log.warning("llm slots not warmed", exc_info=True)
        finally:
            self.slots_warm.set()

    def slots_warmed(self) -> bool:
        return self.slots_warm.is_set()

    async def read_prompts(self, prompts: list[list[dict[str, str]]]) -> int:
        """Read published flows' first-turn prompts into the model's slots (every slot for
        one flow); -1 for a model without slots (the caller sends a plain request instead)."""
        read = getattr(self._provider, "read_prompts", None)
        if read is None:
            return -1

        def read_in_background() -> int:
            with self._background:
                return int(read(prompts))

        return await asyncio.to_thread(read_in_background)

    async def chat(self, messages: list[dict[str, Any]], tools: list[dict] | None = None,
                   response_format: dict | None = None, temperature: float | None = None,
                   max_tokens: int | None = None, spoken: bool = False,
                   ) -> AsyncIterator[LLMChunk]:
        """Streamed: call with `handle.options(stream=True)`."""
        with self._background.serving():
            stream = self._provider._chat_impl(
                [ChatMessage.model_validate(m) for m in messages], tools=tools,
                response_format=response_format, temperature=temperature,
                max_tokens=max_tokens, spoken=spoken)
            async for chunk in coalesce(stream):
                yield chunk

    def capabilities(self) -> LLMCapabilities:
        return self._provider.capabilities

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def prompt_cache_stats(self) -> dict[str, int]:
        """Prompt tokens this replica was asked to read, how many came from llama.cpp's cache,
        and in how many requests (zeros for a model without one)."""
        totals = getattr(self._provider, "prompt_cache", None)
        return {"prompt_tokens": int(getattr(totals, "prompt_tokens", 0)),
                "cached_tokens": int(getattr(totals, "cached_tokens", 0)),
                "requests": int(getattr(totals, "requests", 0))}

    def check_health(self) -> None:
        if self._provider is None:
            raise RuntimeError("llm not loaded")
