"""The session's LLM, as the executor opens it, with the moment each streamed call starts
recorded, so a turn's metrics can tell the executor's own time from the model's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


class TimedLLM:
    def __init__(self, llm: Any, on_start: Callable[[float], None]) -> None:
        self._llm = llm
        self._on_start = on_start

    async def chat(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self._on_start(time.monotonic())
        async for chunk in self._llm.chat(*args, **kwargs):
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def timed_opener(pool: Any, org_id: Any, on_start: Callable[[float], None], *,
                 open_llm: Callable[[dict[str, Any]], Awaitable[Any]] | None = None
                 ) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    async def opener(config: dict[str, Any]) -> Any:
        if open_llm is not None:
            llm = await open_llm(config)
        else:
            from providers import runtime
            from providers.registry import parse_config
            from providers.secrets import load_secrets

            names = parse_config("llm", config)[1].required_secrets()
            secrets = await load_secrets(pool, org_id=org_id, names=names) if names else {}
            llm = await runtime.open_llm(config, secrets=secrets)
        return TimedLLM(llm, on_start)

    return opener
