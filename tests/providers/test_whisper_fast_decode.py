"""Whisper decoded on the audio's real length (tiny.en, the packaged model, Piper's voice).

A caller's sentence decodes to its words on the fast path; a short clip that loops when decoded
unpadded comes back from the guard without the loop; the STT deployment's batch gives each of
several concurrent callers their own words.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from providers.faster_whisper_stt import FasterWhisperSTT, pcm16_to_float
from providers.runtime import open_stt
from providers.serve_clients import ServeSTT
from providers.whisper_decode import DecodeGuard, WhisperDecoder, repetition
from tests.providers.conftest import word_error_rate

# At these widths (the clip's own length, nothing after it) short clips loop on this model.
UNPADDED_GUARDED = DecodeGuard(min_s=0.0, tail_s=0.0, lead_s=0.0, short_min_s=0.0,
                               min_width_ratio=0.0)
UNPADDED = dataclasses.replace(UNPADDED_GUARDED, fallback=False)


async def speak(piper, text: str) -> bytes:
    return b"".join([f.pcm16 async for f in piper.synthesize(text)])


async def test_a_three_second_question_decodes_to_its_words_on_the_fast_path(piper, whisper):
    assert isinstance(whisper, FasterWhisperSTT)
    sentence = "Could you tell me when the store opens tomorrow morning, please?"
    pcm = await speak(piper, sentence)
    audio = pcm16_to_float(pcm, piper.sample_rate)
    assert 2.5 < audio.size / 16000 < 5.0

    transcript = await whisper.recognize(pcm, sample_rate=piper.sample_rate)
    assert word_error_rate(sentence, transcript.text) <= 0.10, transcript.text
    assert transcript.audio_s == audio.size / 16000

    [decoded] = whisper._model.decoder.decode([audio], "en")
    assert decoded.path == "fast" and not decoded.guard, decoded
    assert decoded.text == transcript.text


async def test_short_clips_that_loop_unpadded_come_back_without_the_loop(piper, whisper):
    model = whisper._model.model
    raw = WhisperDecoder(model, guard=UNPADDED)
    guarded = WhisperDecoder(model, guard=UNPADDED_GUARDED)
    words = ["No thanks.", "Yes.", "Hello?", "What's my balance?"]
    clips = [pcm16_to_float(await speak(piper, w), piper.sample_rate) for w in words]

    looped = raw.decode(clips, "en")
    # Piper samples its noise, so not every clip loops on every run; most do.
    loops = [d for d in looped if repetition(d.text)]
    assert loops, [d.text for d in looped]

    rescued = guarded.decode(clips, "en")
    for word, before, after in zip(words, looped, rescued, strict=True):
        assert not repetition(after.text), (word, after)
        if repetition(before.text):
            assert after.path == "fallback" and after.guard, (word, after)
        assert word_error_rate(word, after.text) <= 0.5, (word, after.text)

    # What the provider itself returns for the same clips: the words once.
    for word, audio in zip(words, clips, strict=True):
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        text = (await whisper.recognize(pcm, sample_rate=16000)).text
        assert not repetition(text) and word_error_rate(word, text) <= 0.5, (word, text)


@pytest.mark.slow
async def test_the_stt_deployment_batches_concurrent_callers_each_their_own_words(
        piper, serve_models, monkeypatch):
    monkeypatch.setenv("AICO_MODELS", "serve")
    stt = await open_stt({"kind": "faster-whisper"}, secrets={})
    assert isinstance(stt, ServeSTT)
    deployment = serve_models.get_deployment_handle("stt", app_name="models")
    before = await deployment.batch_stats.remote()
    sentences = ["Please call me back tomorrow morning.", "My name is Daniel.",
                 "I was charged twice last month.", "Yes, please.",
                 "Is the pharmacy open on Sunday?", "I need to reset my password."]
    pcms = [await speak(piper, s) for s in sentences]

    transcripts = await asyncio.gather(*(
        stt.recognize(pcm, sample_rate=piper.sample_rate) for pcm in pcms))

    for sentence, transcript in zip(sentences, transcripts, strict=True):
        assert word_error_rate(sentence, transcript.text) <= 0.2, (sentence, transcript.text)
    after = await deployment.batch_stats.remote()
    assert after["requests"] - before["requests"] == len(sentences)
    # Six callers at once: fewer decodes than requests, at least one shared.
    assert after["batches"] - before["batches"] < len(sentences), (before, after)
    assert after["largest_batch"] > 1


def test_the_loop_check_tells_a_restart_from_speech():
    # What tiny.en produced unpadded on the word-error set, and what callers really say.
    loops = ["Can I change my delivery address? Can I change my delivery", "yes yes yes",
             "My name is Dang Oh Ah Kifer. My name", "No thanks No thanks",
             "The order number is 81536. The order number is 815"]
    speech = ["Hello? Hello? Can you hear me? The line was breaking up a moment ago.",
              "My phone number is 555-0192 and my zip code is 90210.", "No.", "",
              "Could you tell me when the store opens tomorrow morning, please?"]
    assert all(repetition(text) for text in loops)
    assert not any(repetition(text) for text in speech)
