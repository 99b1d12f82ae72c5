"""The offline models that ship in packages, used the way a voice session uses them."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from providers.llm import ChatMessage
from providers.stt import SpeechEvent
from providers.vad import SileroVAD
from tests.providers.conftest import word_error_rate

pytestmark = pytest.mark.slow

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning.",
    "The meeting has moved to the small room upstairs.",
]


async def speak(tts, text: str) -> tuple[bytes, int]:
    pcm = bytearray()
    rate = tts.sample_rate
    async for frame in tts.synthesize(text):
        assert frame.sample_rate == rate
        pcm.extend(frame.pcm16)
    return bytes(pcm), rate


async def test_piper_speaks_three_sentences_and_whisper_transcribes_them(piper, whisper):
    for sentence in SENTENCES:
        pcm, rate = await speak(piper, sentence)
        assert len(pcm) / (2 * rate) > 1.0
        transcript = await whisper.recognize(pcm, sample_rate=rate)
        assert word_error_rate(sentence, transcript.text) <= 0.10, transcript.text
    assert piper.usage.characters == sum(len(s) for s in SENTENCES)
    assert whisper.usage.audio_s > 3.0


async def test_tts_stream_gives_first_audio_before_the_text_ends(piper):
    async with piper.stream() as stream:
        stream.push_text("Hello there, this is the first sentence. And this")
        # Nothing more is pushed until audio for the first sentence has come out.
        first = await anext(aiter(stream))
        assert first.pcm16 and first.sample_rate == piper.sample_rate
        stream.push_text(" is the second one.")
        stream.end_input()
        rest = [frame async for frame in stream]
    assert sum(f.duration_s for f in [first, *rest]) > 2.0


async def test_stt_stream_gives_a_final_per_flushed_utterance(piper, whisper):
    async with whisper.stream(sample_rate=piper.sample_rate) as stream:
        for sentence in SENTENCES[:2]:
            pcm, _ = await speak(piper, sentence)
            for i in range(0, len(pcm), 640):  # ~15 ms frames, as a transport delivers them
                stream.push_frame(pcm[i:i + 640])
            await stream.flush()
        stream.end_input()
        events: list[SpeechEvent] = [ev async for ev in stream]
    finals = [ev for ev in events if ev.type == "final"]
    assert len(finals) == 2
    for sentence, ev in zip(SENTENCES[:2], finals, strict=True):
        assert word_error_rate(sentence, ev.text) <= 0.10, ev.text
    assert finals[0].end_s == pytest.approx(finals[1].start_s)


async def test_silero_vad_marks_speech_and_silence(piper):
    pcm, rate = await speak(piper, SENTENCES[0])
    detector = SileroVAD.load().detector(sample_rate=rate)
    silence = b"\0\0" * rate
    events = detector.push(silence) + detector.push(pcm) + detector.push(silence)
    assert [e.type for e in events] == ["speech_start", "speech_end"]
    assert 0.9 < events[0].at_s < 1.5  # speech starts after the leading second of silence


async def test_llamacpp_streams_a_reply(smollm):
    chunks = [c async for c in smollm.chat(
        [ChatMessage(role="system", content="You are a helpful assistant."),
         ChatMessage(role="user", content="Name three colours.")], max_tokens=40)]
    text = "".join(c.text for c in chunks)
    assert len([c for c in chunks if c.text]) > 3  # token by token, not one block
    assert text.strip()
    assert smollm.usage.completion_tokens > 0 and smollm.usage.prompt_tokens > 0


async def test_llamacpp_honours_a_json_schema(smollm):
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"]}
    result = await smollm.complete(
        [ChatMessage(role="user", content="My name is Ann and I am 31. Give name and age.")],
        response_format={"type": "json_schema", "json_schema": {"name": "person",
                                                                "schema": schema}},
        temperature=0.0, max_tokens=60)
    value = json.loads(result.text)
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)


async def test_minilm_puts_similar_sentences_nearer(minilm):
    vectors = np.array(await minilm.embed([
        "A man is eating food.", "A man is eating a piece of bread.",
        "The new movie is awesome."]))
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.5
    # The published sentence-transformers figure for this pair is 0.7553.
    assert similar == pytest.approx(0.7553, abs=1e-3)


async def test_whisper_decodes_while_the_caller_is_still_speaking(piper, monkeypatch):
    from providers.runtime import open_stt

    monkeypatch.setenv("AICO_MODELS", "inprocess")
    stt = await open_stt({"kind": "faster-whisper", "interim_every_s": 1.0}, secrets={})
    pcm, rate = await speak(piper, SENTENCES[2])
    async with stt.stream(sample_rate=rate) as stream:
        events = aiter(stream)
        cut = len(pcm) * 2 // 3 // 2 * 2  # the caller is two thirds through (whole samples)
        stream.push_frame(pcm[:cut])
        interim = await asyncio.wait_for(anext(events), 120)  # decoded while speaking
        stream.push_frame(pcm[cut:])
        await stream.flush()
        stream.end_input()
        rest = [ev async for ev in events]
    assert interim.type == "interim" and interim.text
    finals = [ev for ev in rest if ev.type == "final"]
    assert len(finals) == 1 and word_error_rate(SENTENCES[2], finals[0].text) <= 0.10
