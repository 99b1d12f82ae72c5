"""ElevenLabs streaming TTS against a loopback server speaking ElevenLabs' wire format."""

from __future__ import annotations

import pytest

from providers.errors import ProviderAuthError, ProviderRateLimited
from providers.runtime import open_tts
from tests.providers.fake_elevenlabs import MS_PER_CHAR, FakeElevenLabs

KEY = "xi-secret-value-5678"


async def open_elevenlabs(fake: FakeElevenLabs, **options):
    return await open_tts({"kind": "elevenlabs", "base_url": fake.url, **options},
                          secrets={"ELEVEN_API_KEY": KEY})


async def test_text_streams_in_and_audio_streams_out_before_the_text_ends():
    async with FakeElevenLabs(api_key=KEY) as fake:
        tts = await open_elevenlabs(fake)
        async with tts.stream() as stream:
            stream.push_text("Hello there. ")
            stream.flush()  # a sentence end: the voice session flushes here
            first = await anext(aiter(stream))  # audio for the first sentence, text still open
            stream.push_text("How can I help?")
            stream.end_input()
            rest = [frame async for frame in stream]
        await tts.aclose()
    assert first.sample_rate == 24000 and tts.sample_rate == 24000
    spoken = sum(f.duration_s for f in [first, *rest])
    expected = len("Hello there. How can I help?") * MS_PER_CHAR / 1000
    assert spoken == pytest.approx(expected, rel=0.1)
    assert "".join(fake.texts).replace("  ", " ").strip() == "Hello there. How can I help?"


async def test_one_shot_synthesis_retries_429_and_5xx():
    async with FakeElevenLabs(api_key=KEY, fail_next=[429, 500]) as fake:
        tts = await open_elevenlabs(fake, max_retries=2)
        frames = [f async for f in tts.synthesize("Good morning.")]
        await tts.aclose()
    assert fake.attempts == 3 and tts.usage.retries == 2
    assert sum(f.duration_s for f in frames) == pytest.approx(13 * MS_PER_CHAR / 1000, rel=0.1)


async def test_rate_limits_past_the_retries_and_bad_keys_are_typed_errors():
    async with FakeElevenLabs(api_key=KEY, fail_next=[429, 429]) as fake:
        tts = await open_elevenlabs(fake, max_retries=1)
        with pytest.raises(ProviderRateLimited):
            _ = [f async for f in tts.synthesize("Hi.")]
        await tts.aclose()
    async with FakeElevenLabs(api_key="another-key") as fake:
        tts = await open_elevenlabs(fake, max_retries=2)
        with pytest.raises(ProviderAuthError) as err:
            _ = [f async for f in tts.synthesize("Hi.")]
        assert fake.attempts == 1
        with pytest.raises(ProviderAuthError):
            async with tts.stream() as stream:
                stream.push_text("Hi.")
                stream.end_input()
                _ = [f async for f in stream]
        await tts.aclose()
    assert KEY not in str(err.value)


async def test_a_socket_dropped_mid_reply_is_reported_as_unavailable():
    from providers.errors import ProviderUnavailable

    async with FakeElevenLabs(api_key=KEY, drop_after_chars=20) as fake:
        tts = await open_elevenlabs(fake, max_retries=0)
        with pytest.raises(ProviderUnavailable):
            async with tts.stream() as stream:
                stream.push_text("Hello there. ")
                stream.flush()
                stream.push_text("This sentence is cut off by the network.")
                stream.end_input()
                _ = [f async for f in stream]
        await tts.aclose()
