"""The call's TTS with one text synthesized ahead of time: the opening clause of a reply that
was prepared speculatively (flows/speculative.py) while the caller was still quiet at a pause.

    ahead = SpeechAhead(tts)
    ahead.prefetch("Our bakery opens at seven,")     # synthesis starts now, nothing plays
    async for frame in ahead.synthesize("Our bakery opens at seven,"):  # that audio, at once
        ...

`synthesize` of exactly the prefetched text replays what was made (and follows it live if
synthesis is still running); any other text goes to the TTS. Everything else is the TTS's own
(`sample_rate`, `usage`, `cached_greeting`, `aclose`, ...). A prefetch that is not wanted any
more is dropped (its synthesis cancelled): it was never heard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from flows.speculative import ReadAhead


class SpeechAhead:
    def __init__(self, tts: Any) -> None:
        self.tts = tts
        self._ahead: tuple[str, ReadAhead] | None = None
        self.prefetched = 0  # texts synthesized ahead
        self.used = 0  # of those, the ones that were then spoken

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tts, name)

    def prefetch(self, text: str) -> None:
        self.drop()
        text = text.strip()
        if text:
            self._ahead = (text, ReadAhead(self.tts.synthesize(text)))
            self.prefetched += 1

    def drop(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[1].cancel()

    def synthesize(self, text: str, *, slack_s: float = 0.0) -> AsyncIterator[Any]:
        ahead = self._ahead
        if ahead is not None and ahead[0] == text.strip():
            self._ahead = None
            self.used += 1
            return ahead[1].follow()
        return self.tts.synthesize(text, slack_s=slack_s)

    async def aclose(self) -> None:
        self.drop()
        await self.tts.aclose()
