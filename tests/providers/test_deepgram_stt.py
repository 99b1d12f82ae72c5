"""Deepgram streaming STT against a loopback server speaking Deepgram's wire format."""

from __future__ import annotations

import asyncio

import pytest

from providers.errors import ProviderAuthError, ProviderRateLimited
from providers.runtime import open_stt
from tests.providers.fake_deepgram import FakeDeepgram

KEY = "dg-secret-value-1234"
SECOND = b"\x01\x00" * 16000  # one second of (near-silent) 16 kHz audio


async def open_deepgram(fake: FakeDeepgram, **options):
    return await open_stt({"kind": "deepgram", "base_url": fake.url, **options},
                          secrets={"DEEPGRAM_API_KEY": KEY})


async def test_streams_interim_and_final_transcripts_per_utterance():
    async with FakeDeepgram(api_key=KEY, transcripts=["Hello there.", "Book a table."]) as fake:
        stt = await open_deepgram(fake)
        async with stt.stream(sample_rate=16000) as stream:
            for _ in range(2):
                for i in range(0, len(SECOND) * 2, 640):
                    stream.push_frame((SECOND * 2)[i:i + 640])
                await stream.flush()
            stream.end_input()
            events = [ev async for ev in stream]
        await stt.aclose()
    assert [e.text for e in events if e.type == "final"] == ["Hello there.", "Book a table."]
    assert any(e.type == "interim" for e in events)
    assert stt.usage.audio_s == pytest.approx(4.0)  # audio seconds pushed, for usage accounting
    assert fake.queries[0]["encoding"] == "linear16"
    assert fake.queries[0]["sample_rate"] == "16000"
    assert fake.queries[0]["model"] == "nova-3"


async def test_a_dropped_socket_reconnects_and_the_stream_goes_on():
    async with FakeDeepgram(api_key=KEY, transcripts=["After the drop."],
                            drop_after_bytes=8000) as fake:
        stt = await open_deepgram(fake, max_retries=2)
        async with stt.stream(sample_rate=16000) as stream:
            for i in range(0, len(SECOND), 640):
                stream.push_frame(SECOND[i:i + 640])
            await stream.flush()
            # Audio in flight when the socket dropped is lost; the plugin reconnects.
            for _ in range(200):
                if fake.attempts == 2:
                    break
                await asyncio.sleep(0.05)
            for i in range(0, len(SECOND), 640):
                stream.push_frame(SECOND[i:i + 640])
            await stream.flush()
            stream.end_input()
            events = [ev async for ev in stream]
        await stt.aclose()
    assert fake.attempts == 2
    assert [e.text for e in events if e.type == "final"][-1] == "After the drop."


async def test_a_bad_key_fails_at_once_with_an_auth_error_that_hides_the_key():
    async with FakeDeepgram(api_key="the-right-key") as fake:
        stt = await open_deepgram(fake, max_retries=3)
        with pytest.raises(ProviderAuthError) as err:
            async with stt.stream(sample_rate=16000) as stream:
                stream.push_frame(SECOND)
                stream.end_input()
                _ = [ev async for ev in stream]
        assert fake.attempts == 1  # 401 is not retried
        with pytest.raises(ProviderAuthError, match="Invalid credentials"):
            await stt.recognize(SECOND, sample_rate=16000)
        await stt.aclose()
    assert KEY not in str(err.value) and KEY not in repr(err.value.to_body())


async def test_one_shot_recognize_retries_429_and_5xx_then_succeeds():
    async with FakeDeepgram(api_key=KEY, transcripts=["Third time lucky."],
                            fail_next=[429, 503]) as fake:
        stt = await open_deepgram(fake, max_retries=2)
        transcript = await stt.recognize(SECOND, sample_rate=16000)
        await stt.aclose()
    assert transcript.text == "Third time lucky."
    assert fake.attempts == 3 and stt.usage.requests == 1 and stt.usage.retries == 2


async def test_one_shot_gives_up_after_its_retries_with_the_last_error():
    async with FakeDeepgram(api_key=KEY, fail_next=[429, 429, 429]) as fake:
        stt = await open_deepgram(fake, max_retries=1)
        with pytest.raises(ProviderRateLimited, match="429"):
            await stt.recognize(SECOND, sample_rate=16000)
        await stt.aclose()
    assert fake.attempts == 2
