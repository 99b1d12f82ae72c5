"""The same providers through the Ray Serve `models` app and its deployment handles."""

from __future__ import annotations

import numpy as np
import pytest

from providers.llm import ChatMessage
from providers.runtime import open_embeddings, open_llm, open_stt, open_tts
from providers.serve_clients import ServeChatLLM, ServeEmbeddings, ServeSTT, ServeTTS
from tests.providers.conftest import word_error_rate

pytestmark = pytest.mark.slow


async def test_sessions_reach_the_models_through_deployment_handles(serve_models, monkeypatch):
    monkeypatch.setenv("AICO_MODELS", "serve")
    tts = await open_tts({"kind": "piper"}, secrets={})
    stt = await open_stt({"kind": "faster-whisper"}, secrets={})
    assert isinstance(tts, ServeTTS) and isinstance(stt, ServeSTT)
    assert tts.sample_rate == 22050

    sentence = "Please call me back tomorrow morning."
    async with tts.stream() as stream:
        stream.push_text(sentence)
        stream.end_input()
        pcm = b"".join([frame.pcm16 async for frame in stream])
    transcript = await stt.recognize(pcm, sample_rate=tts.sample_rate)
    assert word_error_rate(sentence, transcript.text) <= 0.10, transcript.text

    llm = await open_llm({"kind": "llamacpp", "temperature": 0.0}, secrets={})
    assert isinstance(llm, ServeChatLLM)
    chunks = [c async for c in llm.chat([ChatMessage(role="user", content="Name a fruit.")],
                                        max_tokens=20)]
    assert len([c for c in chunks if c.text]) > 1
    assert llm.usage.completion_tokens > 0

    embeddings = await open_embeddings({"kind": "minilm"}, secrets={})
    assert isinstance(embeddings, ServeEmbeddings) and embeddings.dimensions == 384
    v = np.array(await embeddings.embed(["I like tea.", "I enjoy tea.", "Trains are late."]))
    assert v[0] @ v[1] > v[0] @ v[2]


async def test_a_different_model_than_the_deployment_serves_loads_in_process(serve_models,
                                                                           monkeypatch):
    monkeypatch.setenv("AICO_MODELS", "auto")
    llm = await open_llm({"kind": "llamacpp", "n_ctx": 1024}, secrets={})
    assert not isinstance(llm, ServeChatLLM)
    monkeypatch.setenv("AICO_MODELS", "serve")
    from providers.errors import ProviderConfigError

    with pytest.raises(ProviderConfigError, match="does not serve"):
        await open_llm({"kind": "llamacpp", "n_ctx": 1024}, secrets={})
