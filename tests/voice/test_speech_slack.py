"""The agent's voice tells the TTS how soon it needs each sentence: a reply's opening at once
(the caller waits for it), each later sentence once the audio before it has played."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from actors.speech_out import SpeechOut
from providers.tts import TTS, AudioFrame

RATE = 16000
SECONDS_PER_SENTENCE = 1.0


class RecordingTTS(TTS):
    """A second of a tone per sentence; records the slack each text was asked with."""

    kind = "recording-test"

    def __init__(self) -> None:
        super().__init__(sample_rate=RATE)
        self.asked: list[tuple[str, float]] = []

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        self.asked.append((text, slack_s))
        t = np.arange(int(SECONDS_PER_SENTENCE * RATE)) / RATE
        yield AudioFrame((np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16).tobytes(), RATE)


async def test_a_replys_opening_is_needed_now_and_each_later_sentence_after_the_audio_before_it(
) -> None:
    tts = RecordingTTS()
    speech = SpeechOut(tts, send_audio=lambda pcm: None, send_event=lambda e: None)
    try:
        speech.push_stream("r1", "Sure, we open at seven. We close at six. ")
        speech.push_stream("r1", "Sundays we rest.")
        speech.end_stream("r1")
        assert await asyncio.wait_for(speech.wait_stream("r1"), 30)
    finally:
        await speech.aclose()

    assert [text for text, _ in tts.asked] == ["Sure, we open at seven.", "We close at six.",
                                                "Sundays we rest."]
    opening, *later = [slack for _, slack in tts.asked]
    assert opening == 0.0  # nothing plays before it: the caller is waiting
    # A fast TTS: each sentence is asked for as soon as the one before it is made, so the
    # caller still has the audio made before it to hear, less the little already played.
    for made_before, slack in enumerate(later, start=1):
        assert made_before * SECONDS_PER_SENTENCE - 0.3 < slack \
            <= made_before * SECONDS_PER_SENTENCE + 0.05


async def test_a_greeting_said_after_silence_is_needed_now() -> None:
    tts = RecordingTTS()
    speech = SpeechOut(tts, send_audio=lambda pcm: None, send_event=lambda e: None)
    try:
        speech.say("Hello.")
        await asyncio.wait_for(speech.wait_idle(), 30)
    finally:
        await speech.aclose()
    assert tts.asked == [("Hello.", 0.0)]
