"""Ollama as an `openai-compatible` provider profile: an admin points a profile at an Ollama
server, a flow picks it, and a chat session's reply comes from Ollama.

Ollama cannot run here, so `FakeOllama` speaks its documented wire on loopback: the OpenAI
compatibility routes (`POST /v1/chat/completions` streamed as `chat.completion.chunk` events
with `system_fingerprint: "fp_ollama"`, a role in every delta, `data: [DONE]`; no API key;
404 `model "x" not found, try pulling it first`) and the native `GET /api/tags`.
The real `openai` client inside the provider talks to it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from aiohttp import web

from providers.errors import ProviderError
from providers.llm import ChatMessage
from providers.runtime import open_llm

MODELS = ["llama3.2:latest", "qwen2.5:0.5b"]


@dataclass
class FakeOllama:
    reply: str = "こんにちは! Ollama here."
    native_api: bool = True  # False: a server with only the OpenAI routes (vLLM-like)
    requests: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    url: str = ""  # the server root, as an operator writes OLLAMA_HOST
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, {}, request.headers.get("Authorization")))
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "created": 1764000000, "owned_by": "library"}
            for name in MODELS]})

    async def _tags(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, {}, request.headers.get("Authorization")))
        if not self.native_api:
            return web.Response(status=404, text="404 page not found")
        return web.json_response({"models": [
            {"name": name, "model": name, "modified_at": "2026-11-01T10:00:00Z",
             "size": 2019393189, "digest": "a80c4f17acd5" + "0" * 52,
             "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                         "quantization_level": "Q4_K_M"}} for name in MODELS]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body, request.headers.get("Authorization")))
        model = body["model"]
        if model not in MODELS and f"{model}:latest" not in MODELS:
            return web.json_response({"error": {
                "message": f'model "{model}" not found, try pulling it first',
                "type": "api_error", "param": None, "code": None}}, status=404)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "chatcmpl-517", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_ollama"}

        async def send(payload: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps({**base, **payload})}\n\n".encode())

        words = self.reply.split(" ")
        for i, word in enumerate(words):
            text = word if i == len(words) - 1 else word + " "
            await send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                     "finish_reason": None}]})
        await send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                 "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({"choices": [], "usage": {"prompt_tokens": 26,
                                                 "completion_tokens": len(words),
                                                 "total_tokens": 26 + len(words)}})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def llm_flow(name: str, providers: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "providers": providers,
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "reply", "type": "llm", "instructions": "Be brief."},
                      {"id": "hear", "type": "listen"}],
            "edges": [{"from": "start", "to": "reply"}, {"from": "reply", "to": "hear"}]}


async def test_the_provider_streams_from_ollama_with_the_openai_client():
    async with FakeOllama() as ollama:
        llm = await open_llm({"kind": "openai-compatible", "base_url": ollama.url + "/v1",
                              "model": "llama3.2", "temperature": 0.0}, secrets={})
        chunks = [c async for c in llm.chat([ChatMessage(role="user", content="Hi")],
                                            max_tokens=40)]
        await llm.aclose()
    assert "".join(c.text for c in chunks) == "こんにちは! Ollama here."
    assert len([c for c in chunks if c.text]) == 3
    assert llm.usage.prompt_tokens == 26 and llm.usage.completion_tokens == 3
    ((path, body, _auth),) = ollama.requests
    assert path == "/v1/chat/completions" and body["stream"] is True
    assert body["model"] == "llama3.2" and body["max_tokens"] == 40
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


async def test_a_model_ollama_has_not_pulled_is_a_clear_error_and_not_retried():
    async with FakeOllama() as ollama:
        llm = await open_llm({"kind": "openai-compatible", "base_url": ollama.url + "/v1",
                              "model": "mistral", "max_retries": 2}, secrets={})
        with pytest.raises(ProviderError, match="not found, try pulling it first") as err:
            await llm.complete([ChatMessage(role="user", content="Hi")])
        await llm.aclose()
    assert not err.value.retryable
    assert len(ollama.requests) == 1 and llm.usage.retries == 0


async def test_a_chat_session_on_an_ollama_profile_answers_from_ollama(make_org, pool):
    org = await make_org()
    async with FakeOllama(reply="Your table is booked.") as ollama:
        profile = {"name": "ollama", "capability": "llm", "internal": True, "default": True,
                   "allowed_models": ["qwen2.5:0.5b"],
                   "config": {"kind": "openai-compatible", "base_url": ollama.url + "/v1",
                              "model": "llama3.2"}}
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 200, r.text
        document = llm_flow("ollama", {"llm": {"profile": "ollama", "model": "qwen2.5:0.5b"}})
        r = await org.client.post("/v1/flows", json={"name": "ollama", "document": document})
        assert r.status_code == 201, r.text
        flow = r.json()["id"]
        assert (await org.client.post(f"/v1/flows/{flow}/publish")).status_code == 201
        r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})
        assert r.status_code == 201, r.text
        assert [m["text"] for m in r.json()["messages"]] == ["Your table is booked."]
        ((path, body, auth),) = ollama.requests
        assert path == "/v1/chat/completions" and body["model"] == "qwen2.5:0.5b"
        assert auth == "Bearer unused"  # Ollama takes no key, and no secret is sent
        assert body["messages"][0]["role"] == "system"


async def test_an_admin_lists_the_models_an_ollama_profile_serves(make_org):
    org = await make_org()
    async with FakeOllama() as ollama:
        profiles = [{"name": "ollama", "capability": "llm", "internal": True,
                     "config": {"kind": "openai-compatible", "base_url": ollama.url + "/v1",
                                "model": "llama3.2"}},
                    {"name": "piper", "capability": "tts", "config": {"kind": "piper"}}]
        r = await org.client.put("/v1/org/providers", json={"profiles": profiles})
        assert r.status_code == 200, r.text
        r = await org.client.get("/v1/org/providers/llm/ollama/models")
        assert r.status_code == 200, r.text
        assert r.json() == {"source": "ollama", "items": [{"id": m} for m in MODELS]}
        assert [(path, auth) for path, _, auth in ollama.requests] == [("/api/tags", None)]

        r = await org.client.get("/v1/org/providers/tts/piper/models")
        assert r.status_code == 422 and r.json()["details"][0]["field"] == "config.kind"
        r = await org.client.get("/v1/org/providers/llm/nobody/models")
        assert r.status_code == 404 and "nobody" in r.json()["message"]
        editor = await make_org(role="editor")
        r = await editor.client.get("/v1/org/providers/llm/ollama/models")
        assert r.status_code == 403  # admins only
        assert len(ollama.requests) == 1  # none of the refusals reached the server


async def test_a_server_without_ollamas_api_is_listed_by_its_openai_models_route(make_org):
    org = await make_org()
    r = await org.client.put("/v1/secrets/VLLM_KEY", json={"value": "vllm-key-123"})
    assert r.status_code == 201, r.text
    async with FakeOllama(native_api=False) as server:
        profile = {"name": "vllm", "capability": "llm", "internal": True,
                   "config": {"kind": "openai-compatible", "base_url": server.url + "/v1",
                              "model": "llama3.2", "api_key_secret": "VLLM_KEY"}}
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 200, r.text
        r = await org.client.get("/v1/org/providers/llm/vllm/models")
        assert r.status_code == 200, r.text
        assert r.json() == {"source": "openai", "items": [{"id": m} for m in MODELS]}
        assert [(path, auth) for path, _, auth in server.requests] == [
            ("/api/tags", "Bearer vllm-key-123"), ("/v1/models", "Bearer vllm-key-123")]
        assert "vllm-key-123" not in r.text
