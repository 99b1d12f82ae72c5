"""A WhatsApp user sends a voice note (OGG/Opus, spoken by the packaged Piper voice): AICO
downloads it through the Graph API, decodes it, transcribes it with the session's STT (the
packaged Whisper) and the flow answers the words it heard."""

from __future__ import annotations

import re
import time

import pytest
from graph_standin import eventually, notification

from flows.sessions import default_configs
from flows.whatsapp_media import decode_audio, encode_voice_note
from providers.runtime import open_stt, open_tts

pytestmark = pytest.mark.slow

USER = "4917600000042"
SAID = "Please book a table for two people tomorrow evening."


async def test_a_voice_note_is_transcribed_and_answered(wa_org, graph, pool):
    tts = await open_tts(default_configs()["tts"], secrets={})
    frames = [f async for f in tts.synthesize(SAID)]
    note = encode_voice_note(b"".join(f.pcm16 for f in frames), frames[0].sample_rate)
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
    for word in ("book", "table", "tomorrow", "evening"):
        assert word in heard, echo
    assert re.search(r"\b(two|2)\b", heard), echo  # the number as Whisper writes it
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


async def test_a_voice_note_is_answered_with_a_voice_note_whisper_hears(wa_org, graph):
    tts = await open_tts(default_configs()["tts"], secrets={})
    frames = [f async for f in tts.synthesize("Do you have a table for two?")]
    media_id = graph.add_media(encode_voice_note(b"".join(f.pcm16 for f in frames),
                                                 frames[0].sample_rate), "audio/ogg")
    org = await wa_org()
    turned_on = await org.api.patch(f"/v1/channels/whatsapp/numbers/{org.number_id}",
                                    json={"voice_replies": True})
    assert turned_on.status_code == 200 and turned_on.json()["voice_replies"] is True
    await org.deliver(notification(org.phone_number_id, messages=[
        {"from": USER, "id": "wamid.VOICE3", "timestamp": str(int(time.time())), "type": "audio",
         "audio": {"mime_type": "audio/ogg; codecs=opus", "id": media_id, "voice": True}}]))

    async def audio_replies():
        sent = [m for m in graph.sent if m["payload"].get("to") == USER]
        return sent if len(sent) >= 2 else None
    sent = await eventually(audio_replies, timeout_s=120)
    assert [m["payload"]["type"] for m in sent] == ["audio", "audio"]
    uploaded = [m["payload"]["audio"]["id"] for m in sent]
    assert uploaded == graph.uploads
    stt = await open_stt(default_configs()["stt"], secrets={})
    heard = []
    for media in uploaded:
        data, mime = graph.media[media]
        assert data[:4] == b"OggS" and mime == "audio/ogg"
        heard.append((await stt.recognize(decode_audio(data), sample_rate=16000)).text.lower())
    # One coarse check per note: tiny.en hears the greeting's "Hi!" as "hi", "hey" or "hey, i".
    assert "echo" in heard[0], heard
    # The number as Whisper writes it: "two" or "2" (Piper's voice varies per synthesis).
    assert "echo" in heard[1] and "table" in heard[1], heard
    assert re.search(r"\b(two|2)\b", heard[1]), heard


async def _replies(graph, n):
    return len(graph.texts_to(USER)) >= n
