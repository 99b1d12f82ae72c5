"""A speculative LLM reply: started on a caller's pause transcript, before the turn has ended.

The voice pipeline asks `flows.executor.speculate` for one when the caller pauses and the pause
decode has words. It runs the flow's step for that text *without committing anything* (only
say, set, listen and llm nodes may run; anything else refuses the speculation) and, when the
step would start an llm reply, starts that LLM stream now and buffers it, unheard.

When the turn really ends with the same words, the pipeline hands the pending speculation to
the real step (`StepContext.speculations[event_id]`), which commits the `user.turn` exactly as
it always does and then, for the llm node's reply, adopts the buffered stream if and only if
its prompt is the very prompt it would send now (same history, variables, node and options).
Anything else (the caller went on, other words, another prompt) cancels it: the LLM request is
closed and nothing of it is spoken or stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

_WORD = re.compile(r"[\w']+")


def normalised(text: str) -> str:
    """The words of a transcript, case and punctuation aside ("Billing." == "billing")."""
    return " ".join(_WORD.findall(text.lower()))


class ReadAhead:
    """An async stream read into memory as it comes, before anyone wants it: `follow()`
    yields what was read and then what comes; `cancel()` stops reading and closes it."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self.done = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._pump(stream))

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        try:
            async for item in stream:
                self.items.append(item)
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - handed to whoever follows the stream
            self._error = err
        finally:
            self.done = True
            self._changed.set()
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()  # a cancelled stream closes its request now

    async def follow(self, *, cancel_on_exit: bool = True) -> AsyncIterator[Any]:
        sent = 0
        try:
            while True:
                while sent < len(self.items):
                    sent += 1
                    yield self.items[sent - 1]
                if self.done:
                    if self._error is not None:
                        raise self._error
                    return
                self._changed.clear()
                await self._changed.wait()
        finally:
            if cancel_on_exit and not self.done:
                self.cancel()  # the reader went away (a barge-in): stop reading

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()


class SpeculativeReply:
    """An LLM stream started ahead of its turn: chunks are buffered until it is adopted (then
    replayed and followed live) or cancelled (the request is closed)."""

    def __init__(self, text: str, *, node_id: str, prompt: list[dict[str, Any]],
                 options: dict[str, Any]) -> None:
        self.text = text
        self.node_id = node_id
        self.prompt = prompt
        self.options = options
        self.adopted = False
        self.cancelled = False
        self._stream: ReadAhead | None = None

    def start(self, stream: AsyncIterator[Any]) -> None:
        self._stream = ReadAhead(stream)

    def adopt(self, prompt: list[dict[str, Any]], *, node_id: str,
              options: dict[str, Any]) -> AsyncIterator[Any] | None:
        """The reply's stream if it was made for exactly this request; otherwise it is
        cancelled and None is returned (the caller makes the request itself)."""
        if self._stream is None or self.cancelled or self.adopted or \
                node_id != self.node_id or options != self.options or prompt != self.prompt:
            self.cancel()
            return None
        self.adopted = True
        return self._stream.follow()

    async def peek(self) -> AsyncIterator[Any]:
        """The chunks so far and those to come, without adopting the reply (the voice
        pipeline reads them to synthesize the reply's opening ahead of time)."""
        if self._stream is not None:
            async for chunk in self._stream.follow(cancel_on_exit=False):
                yield chunk

    def cancel(self) -> None:
        if not self.adopted:
            self.cancelled = True
            if self._stream is not None:
                self._stream.cancel()


def discard(pending: asyncio.Future[SpeculativeReply | None] | None) -> None:
    """Cancel a speculation whatever its stage (still being prepared, or streaming)."""
    if pending is None:
        return
    if not pending.done():
        pending.cancel()
        return
    if pending.cancelled() or pending.exception() is not None:
        return
    reply = pending.result()
    if reply is not None and not reply.adopted:
        reply.cancel()


def outcome(pending: asyncio.Future[SpeculativeReply | None] | None) -> str | None:
    """What became of a turn's speculation, for its metrics: adopted, cancelled (its prompt
    or words changed), refused (the flow's step may not run ahead: e.g. an http node), or
    None when there was none."""
    if pending is None:
        return None
    if not pending.done() or pending.cancelled():
        return "cancelled"
    if pending.exception() is not None:
        return "failed"
    reply = pending.result()
    if reply is None:
        return "refused"
    return "adopted" if reply.adopted else "cancelled"
