"""The one adapter that makes a non-streaming STT (Whisper) a `STT.stream()`: it decodes at
the pauses the turn detector signals, and when the utterance ends with nothing new after a
pause, that decode IS the final: no second decode after the end of turn."""

from __future__ import annotations

import asyncio

from providers.stt import BufferedSpeechStream, SpeechEvent

RATE = 16000


async def drain(stream: BufferedSpeechStream) -> list[SpeechEvent]:
    return [event async for event in stream]


async def test_an_utterance_that_ends_at_the_pause_is_decoded_once(voice_models, voices):
    stt, _ = voice_models
    words = await voices.caller("What are your hours?")
    before = stt.usage.requests
    stream = stt.stream(sample_rate=RATE)
    assert isinstance(stream, BufferedSpeechStream)
    events = asyncio.ensure_future(drain(stream))
    for i in range(0, len(words), 640):
        stream.push_frame(words[i:i + 640])
    stream.pause()
    stream.end_input()
    [final] = await asyncio.wait_for(events, 60)
    assert final.type == "final" and "hour" in final.text.lower()
    assert final.end_s == len(words) / 2 / RATE
    # One decode went to Whisper: the pause's, reused as the final.
    assert stt.usage.requests - before == 1
    assert stream.pause_decodes_reused == 1


async def test_speech_after_the_pause_makes_its_decode_an_interim(voice_models, voices):
    stt, _ = voice_models
    first = await voices.caller("I was wondering if")
    rest = await voices.caller("you could tell me your hours.")
    before = stt.usage.requests
    stream = stt.stream(sample_rate=RATE)
    stream.push_frame(first)
    stream.pause()
    stream.push_frame(b"\0\0" * (RATE // 2) + rest)  # the caller goes on
    events = aiter(stream)
    # The pause decode reaches the caller as an interim while they are still talking.
    interim = await asyncio.wait_for(anext(events), 60)
    assert interim.type == "interim"
    assert "wondering" in interim.text.lower() and "hour" not in interim.text.lower()
    stream.end_input()
    rest_events = [event async for event in events]
    assert [e.type for e in rest_events] == ["final"]
    final = rest_events[0].text.lower()
    assert "wondering" in final and "hour" in final
    # Two decodes in all: the pause's (now an interim) and the whole utterance's.
    assert stt.usage.requests - before == 2
    assert stream.pause_decodes_reused == 0
