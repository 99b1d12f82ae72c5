"""A loopback stand-in for OpenAI's REST API, speaking its documented wire format.

`POST /v1/chat/completions` (SSE `chat.completion.chunk` events, `data: [DONE]`),
`POST /v1/audio/transcriptions` (multipart, `{"text"}`), `POST /v1/audio/speech`
(`response_format: "pcm"` → raw 24 kHz audio), `POST /v1/embeddings`. Auth is
`Authorization: Bearer <key>`; errors are `{"error": {"message", "type", "code"}}`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

ERRORS = {
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded.", "server_error", None),
}


async def chat_chunk_stream(request: web.Request, body: dict[str, Any], *,
                            stream_id: str = "chatcmpl-fake") -> tuple[web.StreamResponse, Any]:
    """Open a `chat.completion.chunk` SSE response; returns it and `send(delta, finish=None)`,
    which writes one chunk of one choice in OpenAI's wire format (the tests' loopback LLMs)."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    base = {"id": stream_id, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body["model"]}

    async def send(delta: dict[str, Any], finish: str | None = None) -> None:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    return resp, send


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test"
    reply: str = "Hello! How can I help you today?"
    transcript: str = "book a table for two"
    fail_next: list[int] = field(default_factory=list)
    # Cut the next chat stream after this many chunks, without [DONE] (once).
    drop_after_chunks: int | None = None
    tool_call: dict | None = None
    requests: list[tuple[str, dict]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _refusal(self, request: web.Request, body: dict) -> web.Response | None:
        self.requests.append((request.path, body))
        status = None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            status = 401
        elif self.fail_next:
            status = self.fail_next.pop(0)
        if status is None:
            return None
        message, kind, code = ERRORS[status]
        return web.json_response({"error": {"message": message, "type": kind, "param": None,
                                            "code": code}}, status=status)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body["model"]}

        async def send(choice: dict | None, usage: dict | None = None) -> None:
            chunk = {**base, "choices": [choice] if choice else []}
            if usage:
                chunk["usage"] = usage
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"index": 0, "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None})
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            if self.drop_after_chunks is not None and i >= self.drop_after_chunks:
                self.drop_after_chunks = None
                # A connection that drops mid-stream: the transport is there while the
                # handler runs (aiohttp sets it to None only once the connection is gone).
                if request.transport is not None:
                    request.transport.close()
                return resp
            await send({"index": 0, "delta": {"content": word + (" " if i < len(words) - 1
                                                                   else "")},
                        "finish_reason": None})
        finish = "stop"
        if self.tool_call and body.get("tools"):
            args = json.dumps(self.tool_call["arguments"])
            for part in ({"index": 0, "id": "call_1", "type": "function",
                          "function": {"name": self.tool_call["name"], "arguments": ""}},
                         {"index": 0, "function": {"arguments": args[:5]}},
                         {"index": 0, "function": {"arguments": args[5:]}}):
                await send({"index": 0, "delta": {"tool_calls": [part]}, "finish_reason": None})
            finish = "tool_calls"
        await send({"index": 0, "delta": {}, "finish_reason": finish})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(None, {"prompt_tokens": 12, "completion_tokens": len(words),
                              "total_tokens": 12 + len(words)})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        audio = form["file"]
        body = {"model": form["model"], "language": form.get("language"),
                "bytes": len(audio.file.read())}  # type: ignore[union-attr]
        refusal = self._refusal(request, body)
        return refusal or web.json_response({"text": self.transcript})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        resp = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await resp.prepare(request)
        audio = b"\x10\x00" * (24000 * len(body["input"]) // 20)  # 50 ms per character
        for i in range(0, len(audio), 3001):  # odd sizes: the client must keep samples whole
            await resp.write(audio[i:i + 3001])
        await resp.write_eof()
        return resp

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        dims = body.get("dimensions", 8)
        data = [{"object": "embedding", "index": i,
                 "embedding": [float(len(text) % 7 == j) for j in range(dims)]}
                for i, text in enumerate(body["input"])]
        return web.json_response({"object": "list", "data": data[::-1], "model": body["model"],
                                  "usage": {"prompt_tokens": 4, "total_tokens": 4}})
