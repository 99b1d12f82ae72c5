"""STT `vosk`: a Korean utterance spoken by espeak-ng is heard by the packaged Korean model,
partial results first, then the final, in this process and through the Serve deployment.

What this proves and what it does not: espeak-ng's Korean is robotic, and this small model
hears most of it wrong; "어서 오세요" (welcome) is one phrase it hears exactly, so the words
asserted are exact but the vocabulary is tiny. The test proves the wiring (real Kaldi decoding,
streaming partials, one final per utterance, the replica protocol), not accuracy on callers.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from providers.errors import ProviderConfigError
from providers.runtime import open_stt
from providers.stt import SpeechEvent
from providers.vosk_stt import VoskSTT

PHRASE = "어서 오세요. 어서 오세요."
FRAME_S = 0.02


def espeak_korean(text: str, path: Path) -> tuple[bytes, int]:
    """16-bit mono PCM of `text` spoken by espeak-ng's Korean voice (22.05 kHz)."""
    assert shutil.which("espeak-ng"), "espeak-ng is needed: apt-get install espeak-ng (dev.sh test)"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "130", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes()), w.getframerate()


def squeeze(text: str) -> str:
    """The words without spacing or punctuation (Vosk writes neither reliably)."""
    return "".join(ch for ch in text if ch.isalnum())


async def speak_into(stream, pcm: bytes, rate: int) -> list[SpeechEvent]:
    """Push the audio in 20 ms frames at the pace a caller speaks, then end the utterance."""
    step = int(rate * FRAME_S) * 2
    events: list[SpeechEvent] = []

    async def read() -> None:
        async for event in stream:
            events.append(event)

    reader = asyncio.create_task(read())
    for i in range(0, len(pcm), step):
        stream.push_frame(pcm[i:i + step])
        await asyncio.sleep(FRAME_S)
    await stream.flush()
    stream.end_input()
    await asyncio.wait_for(reader, 60)
    return events


def assert_partials_then_final(events: list[SpeechEvent], *, audio_s: float) -> SpeechEvent:
    kinds = [e.type for e in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1, kinds
    interims = [e.text for e in events if e.type == "interim"]
    assert len(interims) >= 2, interims  # heard while "speaking", before the final
    # The start of the phrase is heard before its end was spoken. Not necessarily in the first
    # partial: Kaldi revises its guesses, and audio that piled up while it was busy is read in
    # one batch, so which guess is read first depends on the machine's load (under load the
    # first read was once "었어", then "어서 오세요").
    whole = squeeze(PHRASE)
    assert any(squeeze(t) and whole.startswith(squeeze(t)) and squeeze(t) != whole
               for t in interims), interims
    final = events[-1]
    assert squeeze(final.text) == squeeze(PHRASE), final.text
    assert final.language == "ko" and final.start_s == 0.0
    assert final.end_s == pytest.approx(audio_s, abs=0.03)
    return final


@pytest.fixture(scope="module")
def korean(tmp_path_factory) -> tuple[bytes, int]:
    return espeak_korean(PHRASE, tmp_path_factory.mktemp("ko") / "welcome.wav")


async def test_vosk_streams_partials_then_the_final_in_process(korean):
    pcm, rate = korean
    stt = await open_stt({"kind": "vosk"}, secrets={})
    assert isinstance(stt, VoskSTT) and stt.capabilities.streaming

    async with stt.stream(sample_rate=rate) as stream:
        events = await speak_into(stream, pcm, rate)
    assert_partials_then_final(events, audio_s=len(pcm) / (2 * rate))
    assert stt.usage.requests == 1
    assert stt.usage.audio_s == pytest.approx(len(pcm) / (2 * rate), abs=0.03)

    one_shot = await stt.recognize(pcm, sample_rate=rate)
    assert squeeze(one_shot.text) == squeeze(PHRASE) and one_shot.language == "ko"
    assert stt.usage.requests == 2


async def test_two_utterances_in_one_stream_get_one_final_each(korean):
    pcm, rate = korean
    stt = await open_stt({"kind": "vosk"}, secrets={})
    silence = b"\0\0" * int(rate * 0.3)
    async with stt.stream(sample_rate=rate) as stream:
        stream.push_frame(pcm)
        await stream.flush()
        stream.push_frame(silence)  # nothing said: its final is empty, not a repeat
        await stream.flush()
        stream.push_frame(pcm)
        stream.end_input()
        finals = [e async for e in stream if e.type == "final"]
    assert [squeeze(f.text) for f in finals] == [squeeze(PHRASE), "", squeeze(PHRASE)]
    duration = len(pcm) / (2 * rate)
    assert finals[2].start_s == pytest.approx(duration + 0.3, abs=0.03)


async def test_a_missing_model_folder_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ProviderConfigError, match="Vosk model folder not found.*nowhere"):
        await open_stt({"kind": "vosk", "model": str(tmp_path / "nowhere")}, secrets={})


@pytest.fixture(scope="module")
def vosk_deployment(ray_cluster):
    """The `models` app builder with Vosk as the STT, under its own app name."""
    from ray import serve

    from serve_apps.models import build_models_app

    app = "models-vosk-test"
    serve.run(build_models_app(providers={"stt": {"kind": "vosk"}}), name=app,
              route_prefix=None)
    yield serve.get_deployment_handle("stt", app_name=app)
    serve.delete(app)


async def test_vosk_streams_through_the_serve_deployment(korean, vosk_deployment):
    from providers.configs import VoskConfig
    from providers.serve_clients import serve_client
    from providers.serve_speech_stream import ServeSpeechStream, ServeStreamingSTT

    pcm, rate = korean
    stt = await serve_client("stt", VoskSTT, VoskConfig(), vosk_deployment)
    assert isinstance(stt, ServeStreamingSTT)
    async with stt.stream(sample_rate=rate) as stream:
        assert isinstance(stream, ServeSpeechStream)
        events = await speak_into(stream, pcm, rate)
    assert_partials_then_final(events, audio_s=len(pcm) / (2 * rate))
    assert stream.replays == 0
    assert await vosk_deployment.live_streams.remote() == 0  # closed with the stream
    one_shot = await stt.recognize(pcm, sample_rate=rate)
    assert squeeze(one_shot.text) == squeeze(PHRASE)
    assert stt.usage.requests == 2


async def test_a_replica_that_lost_the_stream_gets_the_utterance_again(korean,
                                                                       vosk_deployment):
    """Several replicas or a restart: the next call lands where the recognizer is not."""
    from providers.configs import VoskConfig
    from providers.serve_clients import serve_client

    pcm, rate = korean
    stt = await serve_client("stt", VoskSTT, VoskConfig(), vosk_deployment)
    half = len(pcm) // 2 - (len(pcm) // 2) % 2
    async with stt.stream(sample_rate=rate) as stream:
        stream.push_frame(pcm[:half])
        await stream.flush()  # a first utterance, so the second starts at a known offset
        stream.push_frame(pcm[:half])
        deadline = asyncio.get_running_loop().time() + 30
        while await vosk_deployment.live_streams.remote() == 0 or stream._utterance == b"":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await vosk_deployment.stream_close.remote(stream._id)  # the replica forgets it
        stream.push_frame(pcm[half:])
        stream.end_input()
        finals = [e async for e in stream if e.type == "final"]
    assert stream.replays == 1
    assert squeeze(finals[-1].text) == squeeze(PHRASE), finals


async def test_a_growing_utterance_is_decoded_from_its_last_pause(korean):
    """The voice pipeline decodes the utterance so far at every pause: after a pause, only the
    new audio is decoded, and the text is the same as decoding everything again."""
    pcm, rate = korean
    stt = await open_stt({"kind": "vosk"}, secrets={})
    first = pcm + b"\0\0" * int(rate * 0.3)  # "어서 오세요. 어서 오세요." and a pause
    both = first + pcm
    assert squeeze((await stt.recognize(first, sample_rate=rate)).text) == squeeze(PHRASE)
    assert stt.reused_audio_s == 0
    grown = await stt.recognize(both, sample_rate=rate)
    assert squeeze(grown.text) == squeeze(PHRASE) * 2, grown.text
    assert stt.reused_audio_s == pytest.approx(len(first) / (2 * rate))
    assert squeeze((await stt.recognize(both, sample_rate=rate)).text) == squeeze(PHRASE) * 2

    # Audio cut mid-word is never continued: the next decode starts from the beginning.
    fresh = await open_stt({"kind": "vosk"}, secrets={})
    cut = len(pcm) // 3 - (len(pcm) // 3) % 2
    await fresh.recognize(pcm[:cut], sample_rate=rate)
    whole = await fresh.recognize(pcm, sample_rate=rate)
    assert fresh.reused_audio_s == 0 and squeeze(whole.text) == squeeze(PHRASE)
