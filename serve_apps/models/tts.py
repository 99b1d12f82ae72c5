"""The text-to-speech deployment: one Piper voice (or other self-hosted TTS) per replica.

It also keeps the greetings: the audio of a published flow's opening `say` texts, the same on
every call of that flow version, in a bounded LRU shared by every call this replica serves
(`greeting`, `keep_greeting`, `cache_greetings`). A call actor asks it before synthesizing an
opening piece, so a call on a fresh actor plays the greeting at once. The key is the replica's
whole TTS configuration and the piece's text: the audio a synthesis here would produce.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from actors.speech_out import GreetingCache, say_pieces, tts_cache_key
from aico.settings import get_settings
from providers.runtime import load_provider_sync
from providers.tts import AudioFrame


@serve.deployment(name="tts", max_ongoing_requests=8)
class TTSDeployment:
    def __init__(self, config: dict[str, Any], *, greeting_cache_bytes: int | None = None) -> None:
        self._provider = load_provider_sync("tts", config)
        self._provider.warm_up()  # the first call allocates: pay it before traffic arrives
        if greeting_cache_bytes is None:
            greeting_cache_bytes = get_settings().voice.greeting_cache_mib * 2**20
        self._greetings = GreetingCache(max_bytes=greeting_cache_bytes)
        self._namespace = tts_cache_key(self._provider)
        self.synthesized = 0  # texts this replica synthesized (calls and greeting fills)

    async def synthesize(self, text: str, slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        """Streamed: call with `handle.options(stream=True)`. `slack_s`: how soon the caller
        needs the audio (`TTS.synthesize`)."""
        self.synthesized += 1
        async for frame in self._provider._synthesize_impl(text, slack_s=slack_s):
            yield frame

    async def greeting(self, text: str) -> bytes | None:
        """The audio of one greeting piece, if this replica holds it (no synthesis)."""
        return self._greetings.get((self._namespace, text))

    async def keep_greeting(self, text: str, pcm16: bytes) -> None:
        """A greeting piece a call synthesized here: the next call's actor finds it."""
        self._greetings.put((self._namespace, text), pcm16)

    async def cache_greetings(self, texts: list[str]) -> int:
        """Synthesize the pieces of `texts` (as a call's speech cuts them) that are not held
        yet; returns how many were synthesized."""
        made = 0
        for text in texts:
            for piece in say_pieces(text):
                key = (self._namespace, piece)
                if key in self._greetings:
                    continue
                self.synthesized += 1
                pcm = b"".join([f.pcm16 async for f in self._provider._synthesize_impl(piece)])
                self._greetings.put(key, pcm)
                made += 1
        return made

    def greeting_stats(self) -> dict[str, int]:
        """What the greeting cache holds and how it served: for operators and tests."""
        cache = self._greetings
        return {"items": len(cache), "bytes": cache.size_bytes, "max_bytes": cache.max_bytes,
                "hits": cache.hits, "misses": cache.misses, "synthesized": self.synthesized}

    def sample_rate(self) -> int:
        return self._provider.sample_rate

    def model_key(self) -> tuple[Any, ...]:
        return self._provider.config.model_key()

    def check_health(self) -> None:
        if self._provider.sample_rate <= 0:
            raise RuntimeError("tts voice not loaded")
