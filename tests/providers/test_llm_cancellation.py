"""A reader cancelled while a provider's next chunk arrives gets no more chunks.

A barge-in cancels the step that reads the reply; on Python 3.11 `asyncio.wait_for` returned the
chunk that came in the same moment instead of the cancellation, and the step went on reading and
speaking the reply the caller had interrupted. `ChatLLM` and `TTS` wait under `asyncio.timeout`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from providers.llm import ChatLLM, ChatMessage, LLMCapabilities, LLMChunk


class Gated(ChatLLM):
    kind = "gated"
    capabilities = LLMCapabilities(streaming=True)

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def _chat_impl(self, messages: list[ChatMessage], **_: Any) -> AsyncIterator[LLMChunk]:
        yield LLMChunk(text="Once upon a time, ")
        await self.gate.wait()
        yield LLMChunk(text="a dragon")


async def test_a_reader_cancelled_as_a_chunk_arrives_reads_no_more():
    llm = Gated()
    read: list[str] = []

    async def reader() -> None:
        async for chunk in llm.chat([ChatMessage(role="user", content="A story, please.")]):
            read.append(chunk.text)

    task = asyncio.create_task(reader())
    while not read:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)  # the reader waits for the next chunk
    llm.gate.set()  # the chunk comes ...
    task.cancel()  # ... as the caller barges in
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read == ["Once upon a time, "]
