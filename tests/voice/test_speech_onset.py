"""The agent's audio starts where the voice does: a TTS's leading silence is not played."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from actors.speech_out import ONSET_KEEP_S, SpeechOut
from providers.tts import TTS, AudioFrame

RATE = 16000


def tone(seconds: float, level: int) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 220 * t) * level).astype(np.int16).tobytes()


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * RATE)


class ChunkedTTS(TTS):
    """Yields each sentence as: an all-silent chunk, then one with more silence and the voice."""

    kind = "chunked-test"

    def __init__(self) -> None:
        super().__init__(sample_rate=RATE)

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        yield AudioFrame(silence(0.1), RATE)
        yield AudioFrame(silence(0.2) + tone(0.5, 8000) + silence(0.1), RATE)


async def test_leading_silence_is_cut_to_a_few_milliseconds_before_the_voice() -> None:
    sent: list[bytes] = []
    speech = SpeechOut(ChunkedTTS(), send_audio=sent.append, send_event=lambda e: None,
                       lead_s=10.0)
    try:
        speech.say("Hello there.")
        await asyncio.wait_for(speech.wait_idle(), 5)
        audio = np.frombuffer(b"".join(sent), dtype=np.int16)
        onset = int(np.flatnonzero(np.abs(audio.astype(np.int32)) > 300)[0])
        # 0.3 s of silence came before the voice; at most ONSET_KEEP_S of it is played,
        # and all of the voice and the silence after it.
        assert onset <= ONSET_KEEP_S * RATE + 1
        voice_start = onset - 1  # the tone's first samples are below the level
        assert abs(audio.size - voice_start - 0.6 * RATE) <= 0.002 * RATE + ONSET_KEEP_S * RATE
    finally:
        await speech.aclose()
