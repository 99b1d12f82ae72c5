"""After its opening a reply is spoken a sentence at a time, unless the audio the caller has
ahead runs short: then the next piece goes to the TTS at its clause, before the sentence ends,
so the caller does not hear dead air while the LLM writes the rest of a long sentence.

Real parts: the packaged Piper voice synthesizes every piece (a short opening is under a second
of audio, a long one several); it is wrapped only to note the texts it was asked for."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from actors.speech_out import SpeechOut
from providers.runtime import open_tts

REST = "and on Sundays, when the market is on, at nine."


class Noted:
    """Forwards to a real TTS and notes each text it is asked to synthesize."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def synthesize(self, text: str, **kw: Any) -> Any:
        self.asked.append(text)
        return self.inner.synthesize(text, **kw)


@pytest.fixture(scope="module")
async def piper() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AICO_MODELS", "inprocess")
        return await open_tts({"kind": "piper"}, secrets={})


async def _asked_within(tts: Noted, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in tts.asked:
            return True
        await asyncio.sleep(0.01)
    return False


async def _reply(piper: Any, said: list[str], *, wait_s: float) -> tuple[list[str], list[str],
                                                                        list[str]]:
    """The sentences `said`, then an unfinished sentence with a clause in it, `wait_s` with
    nothing more from the LLM, then its end. Returns what the TTS was asked just after the
    unfinished text came, after the wait, and in all."""
    tts = Noted(piper)
    speech = SpeechOut(tts, send_audio=lambda pcm: None,  # type: ignore[arg-type]
                       send_event=lambda e: None)
    try:
        speech.push_stream("r1", " ".join(said) + " ")
        assert await _asked_within(tts, said[-1], 30)
        while speech._synthesizing is not None:  # their audio made: the caller has it ahead
            await asyncio.sleep(0.01)
        speech.push_stream("r1", "and on Sundays, when the market")
        await asyncio.sleep(0.1)  # a piece queued now reaches the TTS
        at_once = list(tts.asked)
        await asyncio.sleep(wait_s)
        after_wait = list(tts.asked)
        speech.push_stream("r1", " is on, at nine.")
        speech.end_stream("r1")
        assert await asyncio.wait_for(speech.wait_stream("r1"), 60)
        return at_once, after_wait, list(tts.asked)
    finally:
        await speech.aclose()


async def test_with_little_audio_ahead_the_next_clause_is_spoken_before_its_sentence_ends(
        piper):
    at_once, _, asked = await _reply(piper, ["Yes."], wait_s=0.3)  # 0.6 s of audio
    assert at_once == ["Yes.", "and on Sundays,"]
    # The rest follows (in pieces while the audio ahead stays short), nothing said twice or lost.
    assert asked[:2] == at_once and " ".join(asked[1:]) == REST, asked


async def test_with_audio_enough_ahead_the_sentence_is_spoken_whole(piper):
    long = ("We open at seven tomorrow morning and stay open until six in the evening, every "
            "weekday of the year.")
    said = ["Yes.", long]  # ≈6 s of audio
    at_once, after_wait, asked = await _reply(piper, said, wait_s=0.3)
    assert at_once == after_wait == said
    assert asked == [*said, REST]


async def test_a_clause_is_cut_once_the_audio_ahead_runs_short_with_no_new_text(piper):
    # When the text came the caller had the opening (≈2 s) ahead; the LLM then writes nothing
    # while it plays, and the clause goes to the TTS as the audio runs short.
    opening = "We open at seven tomorrow morning."
    at_once, after_wait, asked = await _reply(piper, [opening], wait_s=2.5)
    assert at_once == [opening]
    assert after_wait == [opening, "and on Sundays,"]
    assert " ".join(asked[1:]) == REST, asked
