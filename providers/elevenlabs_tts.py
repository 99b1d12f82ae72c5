"""TTS `elevenlabs`: ElevenLabs through the livekit-agents plugin — the text-streaming
WebSocket (`multi-stream-input`) for streams, the HTTP `stream` endpoint for one-shot text.
Audio is requested as raw PCM (`pcm_<rate>`), so frames need no decoding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.configs import ElevenLabsConfig
from providers.egress_clients import aiohttp_session, current_guard
from providers.livekit_bridge import LiveKitSynthesizeStream, collect_synthesis, connect_options
from providers.tts import TTS, AudioFrame, SynthesizeStream, TTSCapabilities


class ElevenLabsTTS(TTS):
    kind = "elevenlabs"
    capabilities = TTSCapabilities(streaming=True)

    def __init__(self, config: ElevenLabsConfig, *, api_key: str) -> None:
        super().__init__(sample_rate=config.sample_rate, policy=config.policy())
        self.config = config
        self._api_key = api_key
        # The egress guard it was opened under (None: an internal profile, unguarded).
        self._guard = current_guard()
        self._session: Any = None
        self._plugin_tts: Any = None

    @classmethod
    def from_config(cls, config: ElevenLabsConfig, *,
                    secrets: Mapping[str, str]) -> ElevenLabsTTS:
        return cls(config, api_key=secrets[config.api_key_secret])

    def _plugin(self) -> Any:
        from livekit.plugins import elevenlabs

        if self._session is None or self._session.closed:
            self._session = aiohttp_session(self._guard)
            self._plugin_tts = None
        if self._plugin_tts is None:
            c = self.config
            self._plugin_tts = elevenlabs.TTS(
                voice_id=c.voice_id, model=c.model, encoding=f"pcm_{c.sample_rate}",  # type: ignore[arg-type]  # config allows only pcm rates
                api_key=self._api_key, base_url=c.base_url, http_session=self._session,
                enable_logging=False)
        return self._plugin_tts

    def _stream_impl(self) -> SynthesizeStream:
        plugin = self._plugin()
        return LiveKitSynthesizeStream(
            self, lambda: plugin.stream(conn_options=connect_options(self.policy)))

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        async for frame in collect_synthesis(self._plugin(), text, policy=self.policy):
            yield frame

    async def aclose(self) -> None:
        if self._plugin_tts is not None:
            await self._plugin_tts.aclose()
        if self._session is not None:
            await self._session.close()
