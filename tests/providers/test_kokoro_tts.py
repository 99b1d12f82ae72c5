"""TTS `kokoro`: Kokoro-82M speaks Japanese from the packaged int8 model and voices, sentence
by sentence, in this process and through the Serve deployment; the catalog lists it.

No Japanese recognizer can run here, so the audio is judged by its shape (rate, duration
for the number of morae, loudness, one chunk per sentence), not by listening to it.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from providers.errors import ProviderConfigError
from providers.kokoro_tts import SAMPLE_RATE, KokoroTTS, split_sentences
from providers.runtime import open_tts

SENTENCES = ["こんにちは。", "明日の予約を確認しました。", "ありがとうございます。"]
TEXT = "".join(SENTENCES)


def pcm_stats(pcm: bytes) -> tuple[float, float]:
    """Duration in seconds at the Kokoro rate, and RMS level (0..1)."""
    audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    return audio.size / SAMPLE_RATE, float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0


def test_japanese_text_is_cut_into_sentences_without_spaces():
    from providers.tts import split_sentences as stream_splitter

    assert split_sentences(TEXT) == SENTENCES
    assert split_sentences("Hello there. How are you?") == ["Hello there.", "How are you?"]
    # The splitter the TTS stream and the voice pipeline cut LLM text with.
    assert stream_splitter(TEXT + "ご") == (SENTENCES, "ご")
    assert stream_splitter("Dr. Smith is in. Bye") == (["Dr. Smith is in."], "Bye")


async def test_kokoro_speaks_japanese_sentence_by_sentence_at_its_declared_rate():
    tts = await open_tts({"kind": "kokoro", "voice": "jf_alpha"}, secrets={})
    assert isinstance(tts, KokoroTTS) and tts.sample_rate == SAMPLE_RATE == 24000

    # Hold the second sentence's reading until the first sentence's audio has arrived: the
    # first chunk must come before the rest of the text is synthesized, not after.
    gate = threading.Event()
    read = tts._model.phonemize
    seen: list[str] = []

    def gated(text: str) -> str:
        seen.append(text)
        if len(seen) == 2:
            assert gate.wait(60), "the first sentence's audio never reached the caller"
        return read(text)

    tts._model.phonemize = gated
    try:
        frames = []
        async for frame in tts.synthesize(TEXT):
            if not frames:
                assert len(seen) <= 2  # the rest of the text is not synthesized yet
                gate.set()
            frames.append(frame)
    finally:
        tts._model.phonemize = read
        gate.set()
    assert seen == SENTENCES
    assert len(frames) == 3 and {f.sample_rate for f in frames} == {SAMPLE_RATE}

    pcm = b"".join(f.pcm16 for f in frames)
    duration, rms = pcm_stats(pcm)
    # 34 morae: Japanese is spoken at ~6-10 morae per second, plus two sentence pauses.
    assert 2.5 < duration < 8.0, duration
    assert rms > 0.02, rms  # speech, not silence
    for frame in frames:
        assert pcm_stats(frame.pcm16)[1] > 0.02
    assert tts.usage.requests == 1
    assert tts.usage.characters == len(TEXT)
    assert tts.usage.audio_s == pytest.approx(duration)


async def test_an_llm_stream_of_japanese_deltas_becomes_audio():
    tts = await open_tts({"kind": "kokoro"}, secrets={})
    async with tts.stream() as stream:
        for piece in ["明日の", "予約を", "確認しました。", "ありがとう", "ございます。"]:
            stream.push_text(piece)
        stream.end_input()
        frames = [f async for f in stream]
    assert len(frames) == 2 and tts.usage.requests == 2  # one synthesis per sentence
    duration, rms = pcm_stats(b"".join(f.pcm16 for f in frames))
    assert 1.5 < duration < 6.0 and rms > 0.02


async def test_english_through_kokoro_is_heard_back_by_whisper(whisper):
    """The round trip this machine allows: English phonemes (espeak-ng via kokoro-onnx) in a
    packaged Japanese voice, heard by Whisper tiny.en."""
    from tests.providers.conftest import word_error_rate

    sentence = "Please call me back tomorrow morning. Thank you."
    tts = await open_tts({"kind": "kokoro", "language": "en-us", "voice": "jf_alpha"},
                         secrets={})
    frames = [f async for f in tts.synthesize(sentence)]
    assert len(frames) == 2  # two sentences, two chunks
    pcm = b"".join(f.pcm16 for f in frames)
    heard = await whisper.recognize(pcm, sample_rate=SAMPLE_RATE)
    assert word_error_rate(sentence, heard.text) <= 0.15, heard.text


async def test_voice_and_speed_come_from_config():
    slow = await open_tts({"kind": "kokoro", "voice": "jm_kumo", "speed": 0.7}, secrets={})
    fast = await open_tts({"kind": "kokoro", "voice": "jm_kumo", "speed": 1.4}, secrets={})
    slow_s = pcm_stats(b"".join([f.pcm16 async for f in slow.synthesize(SENTENCES[1])]))[0]
    fast_s = pcm_stats(b"".join([f.pcm16 async for f in fast.synthesize(SENTENCES[1])]))[0]
    assert slow_s > fast_s * 1.4, (slow_s, fast_s)


async def test_an_unknown_voice_is_a_config_error_listing_the_voices():
    with pytest.raises(ProviderConfigError, match="'en_bella' is not in voices_ja.npz.*jf_alpha"):
        await open_tts({"kind": "kokoro", "voice": "en_bella"}, secrets={})


async def test_the_catalog_lists_both_new_kinds_with_their_schemas(api):
    res = await api.get("/v1/providers")
    assert res.status_code == 200
    kinds = {(p["capability"], p["kind"]): p for p in res.json()["items"]}
    kokoro, vosk = kinds[("tts", "kokoro")], kinds[("stt", "vosk")]
    assert kokoro["self_hosted"] and vosk["self_hosted"]
    assert kokoro["required_secrets"] == [] and vosk["required_secrets"] == []
    assert {"model", "voices", "voice", "language", "speed"} <= set(
        kokoro["config_schema"]["properties"])
    assert kokoro["config_schema"]["properties"]["speed"]["maximum"] == 2.0
    assert {"model", "language"} <= set(vosk["config_schema"]["properties"])


@pytest.fixture(scope="module")
def kokoro_deployment(ray_cluster):
    from ray import serve

    from serve_apps.models import build_models_app

    app = "models-kokoro-test"
    serve.run(build_models_app(providers={"tts": {"kind": "kokoro"}}), name=app,
              route_prefix=None)
    yield serve.get_deployment_handle("tts", app_name=app)
    serve.delete(app)


async def test_kokoro_streams_through_the_serve_deployment(kokoro_deployment):
    from providers.configs import KokoroConfig
    from providers.serve_clients import ServeTTS, serve_client

    tts = await serve_client("tts", KokoroTTS, KokoroConfig(), kokoro_deployment)
    assert isinstance(tts, ServeTTS) and tts.sample_rate == SAMPLE_RATE
    frames = [f async for f in tts.synthesize(TEXT)]
    assert len(frames) == 3  # one per sentence, streamed from the replica
    duration, rms = pcm_stats(b"".join(f.pcm16 for f in frames))
    assert 2.5 < duration < 8.0 and rms > 0.02
    assert tts.usage.requests == 1 and tts.usage.audio_s == pytest.approx(duration)
