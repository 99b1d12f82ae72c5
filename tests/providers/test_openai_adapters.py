"""OpenAI LLM, STT, TTS and embeddings against a loopback server speaking OpenAI's format."""

from __future__ import annotations

import pytest

from providers.errors import ProviderAuthError, ProviderRateLimited, ProviderUnavailable
from providers.llm import ChatMessage
from providers.runtime import open_embeddings, open_llm, open_stt, open_tts
from tests.providers.fake_openai import FakeOpenAI

KEY = "sk-secret-value-9999"
SECRETS = {"OPENAI_API_KEY": KEY}
HI = [ChatMessage(role="user", content="Hi")]


async def test_llm_streams_text_usage_and_assembled_tool_calls():
    async with FakeOpenAI(api_key=KEY, tool_call={"name": "book", "arguments": {"n": 2}}) as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        tools = [{"type": "function", "function": {"name": "book", "parameters": {
            "type": "object", "properties": {"n": {"type": "integer"}}}}}]
        chunks = [c async for c in llm.chat(HI, tools=tools, temperature=0.2)]
        await llm.aclose()
    assert "".join(c.text for c in chunks) == "Hello! How can I help you today?"
    (call,) = [t for c in chunks for t in (c.tool_calls or [])]
    assert call.name == "book" and call.parsed_arguments() == {"n": 2}
    assert llm.usage.prompt_tokens == 12 and llm.usage.completion_tokens == 7
    sent = fake.requests[0][1]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.2 and sent["stream"]


async def test_llm_retries_429_and_5xx_before_the_first_token():
    async with FakeOpenAI(api_key=KEY, fail_next=[429, 500]) as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url, "max_retries": 2},
                             secrets=SECRETS)
        result = await llm.complete(HI)
        await llm.aclose()
    assert result.text.startswith("Hello!") and llm.usage.retries == 2


async def test_llm_errors_are_typed_and_never_carry_the_key():
    async with FakeOpenAI(api_key="sk-other") as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        with pytest.raises(ProviderAuthError, match="Incorrect API key") as err:
            await llm.complete(HI)
        assert len(fake.requests) == 1  # a 401 is not retried
        await llm.aclose()
    assert KEY not in str(err.value) and err.value.__cause__ is None
    async with FakeOpenAI(api_key=KEY, fail_next=[429, 429, 429]) as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url, "max_retries": 1},
                             secrets=SECRETS)
        with pytest.raises(ProviderRateLimited):
            await llm.complete(HI)
        await llm.aclose()


async def test_a_stream_cut_after_the_first_tokens_is_reported_not_retried():
    async with FakeOpenAI(api_key=KEY, drop_after_chunks=2) as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        got: list[str] = []
        with pytest.raises(ProviderUnavailable):
            async for chunk in llm.chat(HI):
                got.append(chunk.text)
        await llm.aclose()
    assert "".join(got).startswith("Hello!")  # what was streamed reached the caller
    assert len(fake.requests) == 1  # half a reply is never silently regenerated


async def test_stt_sends_wav_and_returns_the_text():
    async with FakeOpenAI(api_key=KEY) as fake:
        stt = await open_stt({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        async with stt.stream(sample_rate=16000) as stream:
            stream.push_frame(b"\x00\x01" * 16000)
            await stream.flush()
            stream.end_input()
            events = [e async for e in stream]
        await stt.aclose()
    assert [(e.type, e.text) for e in events] == [("final", "book a table for two")]
    path, body = fake.requests[0]
    assert path == "/v1/audio/transcriptions" and body["language"] == "en"
    assert body["bytes"] == 44 + 32000  # a WAV header and the samples


async def test_tts_streams_whole_samples_at_24khz_and_retries_503():
    async with FakeOpenAI(api_key=KEY, fail_next=[503]) as fake:
        tts = await open_tts({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        frames = [f async for f in tts.synthesize("Hello there.")]
        await tts.aclose()
    assert all(len(f.pcm16) % 2 == 0 and f.sample_rate == 24000 for f in frames)
    assert sum(f.duration_s for f in frames) == pytest.approx(12 * 0.05, rel=0.01)
    assert fake.requests[-1][1]["response_format"] == "pcm" and tts.usage.retries == 1


async def test_embeddings_come_back_in_input_order():
    async with FakeOpenAI(api_key=KEY) as fake:
        emb = await open_embeddings({"kind": "openai", "base_url": fake.url, "dimensions": 8},
                                    secrets=SECRETS)
        vectors = await emb.embed(["a", "bb", "ccc"])
        await emb.aclose()
    assert [v.index(1.0) for v in vectors] == [1, 2, 3]
    assert fake.requests[0][1]["dimensions"] == 8


async def test_the_api_key_never_reaches_the_logs_even_at_debug(caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    async with FakeOpenAI(api_key=KEY) as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        await llm.complete(HI)
        await llm.aclose()
    async with FakeOpenAI(api_key="sk-other", fail_next=[]) as fake:
        llm = await open_llm({"kind": "openai", "base_url": fake.url}, secrets=SECRETS)
        with pytest.raises(ProviderAuthError):
            await llm.complete(HI)
        await llm.aclose()
    assert caplog.records  # the client did log its requests
    for record in caplog.records:
        assert KEY not in f"{record.getMessage()} {record.exc_text or ''}"
