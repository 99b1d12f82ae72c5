"""A WhatsApp user sends a voice note (OGG/Opus, spoken by the packaged Piper voice): AICO
downloads it through the Graph API, decodes it, transcribes it with the session's STT (the
packaged Whisper) and the flow answers the words it heard."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from graph_standin import eventually, notification

from flows.sessions import default_configs
from providers.runtime import open_tts

pytestmark = pytest.mark.slow

USER = "4917600000042"
SAID = "Please book a table for two people tomorrow evening."


def ogg_opus(pcm16: bytes, sample_rate: int) -> bytes:
    """PCM as a WhatsApp voice note: Opus in an OGG container, mono, 48 kHz."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        samples = np.frombuffer(pcm16, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


async def test_a_voice_note_is_transcribed_and_answered(wa_org, graph, pool):
    tts = await open_tts(default_configs()["tts"], secrets={})
    frames = [f async for f in tts.synthesize(SAID)]
    note = ogg_opus(b"".join(f.pcm16 for f in frames), frames[0].sample_rate)
    assert note[:4] == b"OggS"
    media_id = graph.add_media(note, "audio/ogg; codecs=opus")

    org = await wa_org()
    ack = await org.deliver(notification(org.phone_number_id, messages=[
        {"from": USER, "id": "wamid.VOICE1", "timestamp": str(int(time.time())), "type": "audio",
         "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "ignored-by-aico",
                   "id": media_id, "voice": True}}]))
    assert ack.status_code == 200

    await eventually(lambda: _replies(graph, 2), timeout_s=120)
    greeting, echo = graph.texts_to(USER)
    assert greeting == "Hi! I echo." and echo.startswith("Echo: ")
    heard = echo.lower()
    for word in ("book", "table", "two", "tomorrow", "evening"):
        assert word in heard, echo
    assert graph.media_downloads == [media_id]

    turn = await pool.fetchrow(
        "SELECT payload FROM session_events WHERE org_id = $1 AND type = 'user.turn'", org.id)
    assert turn["payload"]["voice_note"] is True and "table" in turn["payload"]["text"].lower()
    usage = await pool.fetchval("SELECT metrics->'usage'->'stt' FROM sessions WHERE org_id = $1",
                                org.id)
    assert usage and usage["audio_s"] > 2


async def test_an_undecodable_voice_note_gets_a_polite_answer(wa_org, graph):
    media_id = graph.add_media(b"OggS not really audio", "audio/ogg; codecs=opus")
    org = await wa_org()
    await org.deliver(notification(org.phone_number_id, messages=[
        {"from": USER, "id": "wamid.VOICE2", "timestamp": str(int(time.time())), "type": "audio",
         "audio": {"mime_type": "audio/ogg; codecs=opus", "id": media_id, "voice": True}}]))
    await eventually(lambda: _replies(graph, 2))
    assert graph.texts_to(USER) == ["Hi! I echo.",
                                    "Sorry, I could not make out that voice message."]


async def _replies(graph, n):
    return len(graph.texts_to(USER)) >= n
