"""After its opening a reply is spoken a sentence at a time, unless the audio the caller has
ahead runs short: then the next piece goes to the TTS at its clause, before the sentence ends,
so the caller does not hear dead air while the LLM writes the rest of a long sentence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from actors.speech_out import CLAUSE_CUT_AHEAD_S, SpeechOut
from providers.tts import TTS, AudioFrame

RATE = 16000


class PieceTTS(TTS):
    """`seconds` of a tone per piece; records the texts it was asked for."""

    kind = "piece-test"

    def __init__(self, seconds: float) -> None:
        super().__init__(sample_rate=RATE)
        self.seconds = seconds
        self.asked: list[str] = []

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        self.asked.append(text)
        t = np.arange(int(self.seconds * RATE)) / RATE
        yield AudioFrame((np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16).tobytes(), RATE)


async def _asked_within(tts: PieceTTS, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in tts.asked:
            return True
        await asyncio.sleep(0.01)
    return False


async def _reply(seconds: float, *, wait_s: float) -> tuple[list[str], list[str]]:
    """An opening, then an unfinished sentence with a clause in it, `wait_s` with nothing more
    from the LLM, then its end. Returns what the TTS was asked before the end, and in all."""
    tts = PieceTTS(seconds)
    speech = SpeechOut(tts, send_audio=lambda pcm: None, send_event=lambda e: None)
    try:
        speech.push_stream("r1", "We open at seven tomorrow. ")
        assert await _asked_within(tts, "We open at seven tomorrow.", 10)
        speech.push_stream("r1", "and on Sundays, when the market")
        await asyncio.sleep(wait_s)
        before_end = list(tts.asked)
        speech.push_stream("r1", " is on, at nine.")
        speech.end_stream("r1")
        assert await asyncio.wait_for(speech.wait_stream("r1"), 30)
        return before_end, list(tts.asked)
    finally:
        await speech.aclose()


async def test_with_little_audio_ahead_the_next_clause_is_spoken_before_its_sentence_ends():
    before_end, asked = await _reply(0.4, wait_s=0.3)
    assert before_end == ["We open at seven tomorrow.", "and on Sundays,"]
    # The rest follows in pieces too while the audio ahead stays short (a piece is 0.4 s
    # here), nothing said twice or lost.
    assert asked == ["We open at seven tomorrow.", "and on Sundays,", "when the market is on,",
                     "at nine."]


async def test_with_audio_enough_ahead_the_sentence_is_spoken_whole():
    before_end, asked = await _reply(CLAUSE_CUT_AHEAD_S + 3.0, wait_s=0.3)
    assert before_end == ["We open at seven tomorrow."]
    assert asked == ["We open at seven tomorrow.", "and on Sundays, when the market is on, at nine."]


async def test_a_clause_is_cut_once_the_audio_ahead_runs_short_with_no_new_text():
    # Ahead when the text came: more than CLAUSE_CUT_AHEAD_S; the LLM then writes nothing
    # while the opening plays, and the clause is cut as the audio runs short.
    seconds = CLAUSE_CUT_AHEAD_S + 0.5
    before_end, asked = await _reply(seconds, wait_s=seconds)
    assert before_end == ["We open at seven tomorrow.", "and on Sundays,"]
    assert asked[-1] == "when the market is on, at nine."
