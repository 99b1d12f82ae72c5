"""STT `deepgram`: Deepgram live transcription (WebSocket, interim results) through the
livekit-agents Deepgram plugin; one-shot `recognize` posts to Deepgram's pre-recorded API."""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping
from typing import Any

from providers.configs import DeepgramConfig
from providers.egress_clients import aiohttp_session, current_guard, httpx_client
from providers.errors import ProviderTimeout, ProviderUnavailable, error_for_status
from providers.livekit_bridge import LiveKitSpeechStream, connect_options
from providers.stt import STT, SpeechStream, STTCapabilities, Transcript


class DeepgramSTT(STT):
    kind = "deepgram"
    capabilities = STTCapabilities(streaming=True, interim_results=True,
                                   sample_rates=(8000, 16000, 24000, 48000))

    def __init__(self, config: DeepgramConfig, *, api_key: str) -> None:
        super().__init__(policy=config.policy(), language=config.language)
        self.config = config
        self._api_key = api_key
        # The egress guard it was opened under (None: an internal profile, unguarded).
        self._guard = current_guard()
        self._session: Any = None
        self._plugins: dict[int, Any] = {}

    @classmethod
    def from_config(cls, config: DeepgramConfig, *, secrets: Mapping[str, str]) -> DeepgramSTT:
        return cls(config, api_key=secrets[config.api_key_secret])

    def _plugin(self, sample_rate: int) -> Any:
        from livekit.plugins import deepgram

        if self._session is None or self._session.closed:
            self._session = aiohttp_session(self._guard)
        if sample_rate not in self._plugins:
            c = self.config
            self._plugins[sample_rate] = deepgram.STT(
                model=c.model, language=c.language, interim_results=c.interim_results,
                endpointing_ms=c.endpointing_ms, sample_rate=sample_rate,
                api_key=self._api_key, http_session=self._session, base_url=c.base_url)
        return self._plugins[sample_rate]

    def _stream_impl(self, *, sample_rate: int, language: str | None) -> SpeechStream:
        plugin = self._plugin(sample_rate)
        return LiveKitSpeechStream(
            self, lambda: plugin.stream(language=language or self.config.language,
                                        conn_options=connect_options(self.policy)),
            sample_rate=sample_rate, language=language)

    async def _recognize_impl(self, pcm16: bytes, *, sample_rate: int,
                              language: str | None) -> Transcript:
        # Deepgram's pre-recorded API, called directly: the plugin's version reads error
        # bodies as results, which turns a 401 into a retryable connection error.
        import httpx

        c = self.config
        params = {"model": c.model, "language": language or c.language, "punctuate": "true",
                  "smart_format": "true"}
        url = c.base_url.replace("wss://", "https://").replace("ws://", "http://")
        try:
            async with httpx_client(self._guard, timeout=self.policy.timeout_s) as client:
                res = await client.post(url, params=params, content=wav_bytes(pcm16, sample_rate),
                                        headers={"Authorization": f"Token {self._api_key}",
                                                 "Content-Type": "audio/wav"})
        except httpx.TimeoutException:
            raise ProviderTimeout("deepgram: request timed out", provider=self.kind) from None
        except httpx.HTTPError as err:
            raise ProviderUnavailable(f"deepgram: connection failed ({type(err).__name__})",
                                      provider=self.kind) from None
        if res.status_code != 200:
            raise error_for_status(res.status_code, f"deepgram: HTTP {res.status_code}: "
                                   f"{_error_message(res)}", provider=self.kind)
        channel = res.json()["results"]["channels"][0]
        alt = channel["alternatives"][0] if channel["alternatives"] else {}
        return Transcript(text=alt.get("transcript", ""),
                          language=channel.get("detected_language") or language,
                          audio_s=len(pcm16) / (2 * sample_rate))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def wav_bytes(pcm16: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)
    return buf.getvalue()


def _error_message(res: Any) -> str:
    try:
        body = res.json()
        return str(body.get("err_msg") or body.get("message") or body)[:300]
    except ValueError:
        return res.text[:300]
