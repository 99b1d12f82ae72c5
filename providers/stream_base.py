"""The life every provider stream shares: an input queue, an output queue, one task between.

STT streams (audio in, transcripts out) and TTS streams (text in, audio out) differ only in
what goes in, what comes out and the `_run` that turns one into the other; the queues, the end
mark, error wrapping, iteration and closing live here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Self, TypeVar

from providers.errors import ProviderError

log = logging.getLogger("aico.providers.streams")

# Put on the input queue by `end_input`, and on the output queue when the stream is done.
END_OF_STREAM = object()

OutT = TypeVar("OutT")


class ProviderStream(ABC, Generic[OutT]):
    def __init__(self, *, provider: str, role: str) -> None:
        self._provider = provider
        self._input: asyncio.Queue[Any] = asyncio.Queue()
        self._output: asyncio.Queue[Any] = asyncio.Queue()
        self._input_ended = False
        self._task = asyncio.create_task(self._main(), name=f"{provider}-{role}-stream")

    def end_input(self) -> None:
        if not self._input_ended:
            self._input_ended = True
            self._input.put_nowait(END_OF_STREAM)

    def __aiter__(self) -> AsyncIterator[OutT]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[OutT]:
        while True:
            item = await self._output.get()
            if item is END_OF_STREAM:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _emit(self, item: OutT) -> None:
        self._output.put_nowait(item)

    async def _main(self) -> None:
        try:
            await self._run(self._input, self._emit)
        except asyncio.CancelledError:
            raise
        except ProviderError as err:
            self._output.put_nowait(err)
        except Exception as err:
            log.exception("%s stream failed", self._provider)
            self._output.put_nowait(ProviderError(f"{self._provider} stream failed: {err}",
                                                  provider=self._provider))
        finally:
            self._output.put_nowait(END_OF_STREAM)
            self._on_finished()

    def _on_finished(self) -> None:
        """Called once the stream has ended, failed or been cancelled."""

    @abstractmethod
    async def _run(self, inputs: asyncio.Queue, emit: Callable[[OutT], None]) -> None:
        """Read items from `inputs` until END_OF_STREAM; call `emit` for each output."""

    async def aclose(self) -> None:
        self.end_input()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
