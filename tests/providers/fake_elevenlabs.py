"""A loopback stand-in for ElevenLabs' text-to-speech API, speaking its documented wire format.

WebSocket `GET /v1/text-to-speech/{voice_id}/multi-stream-input?model_id=..&output_format=
pcm_24000`, header `xi-api-key`: JSON in — a context's first message `{"text": " ",
"voice_settings", "context_id"}`, then `{"text", "context_id", "flush"?}`, then
`{"context_id", "close_context": true}`; JSON out — `{"audio": <base64 PCM>, "contextId",
"normalizedAlignment"}` as text is generated and `{"isFinal": true, "contextId"}` when a
context closes. HTTP `POST /v1/text-to-speech/{voice_id}/stream?output_format=...` with
`{"text", "model_id", ...}` streams raw audio. Errors carry `{"detail": {"status", "message"}}`.

Audio is a quiet tone, 60 ms per character, so tests can check durations.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Self

from aiohttp import WSMsgType, web

ERRORS = {401: ("invalid_api_key", "Invalid API key"),
          429: ("too_many_concurrent_requests", "Too many concurrent requests"),
          500: ("internal_error", "Internal server error"),
          503: ("service_unavailable", "Service unavailable")}
MS_PER_CHAR = 60


def tone(chars: int, rate: int) -> bytes:
    n = rate * MS_PER_CHAR * chars // 1000
    return b"".join(struct.pack("<h", int(800 * math.sin(i * 0.06))) for i in range(n))


@dataclass
class FakeElevenLabs:
    api_key: str = "xi-test-key"
    fail_next: list[int] = field(default_factory=list)
    drop_after_chars: int | None = None  # close the socket abruptly once (no close frame)
    attempts: int = 0
    texts: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/text-to-speech/{voice}/multi-stream-input", self._ws)
        app.router.add_post("/v1/text-to-speech/{voice}/stream", self._http)
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

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.attempts += 1
        status = None
        if request.headers.get("xi-api-key") != self.api_key:
            status = 401
        elif self.fail_next:
            status = self.fail_next.pop(0)
        if status is None:
            return None
        code, msg = ERRORS[status]
        return web.json_response({"detail": {"status": code, "message": msg}}, status=status)

    @staticmethod
    def _rate(request: web.Request) -> int:
        return int(request.query.get("output_format", "pcm_24000").split("_")[1])

    async def _http(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        self.texts.append(body["text"])
        resp = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await resp.prepare(request)
        audio = tone(len(body["text"]), self._rate(request))
        for i in range(0, len(audio), 4800):
            await resp.write(audio[i:i + 4800])
        await resp.write_eof()
        return resp

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        rate = self._rate(request)
        pending: dict[str, str] = {}
        chars_seen = 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("close_socket"):
                await ws.close()
                break
            ctx = data.get("context_id", "default")
            text = data.get("text")
            if text is not None and text != " ":
                pending[ctx] = pending.get(ctx, "") + text
                self.texts.append(text)
                chars_seen += len(text)
                if self.drop_after_chars is not None and chars_seen >= self.drop_after_chars:
                    self.drop_after_chars = None
                    request.transport.close()
                    return ws
            # Generate on a flush, at a sentence end, or when the context closes.
            done = pending.get(ctx, "")
            if done and (data.get("flush") or data.get("close_context")
                         or done.rstrip().endswith((".", "!", "?"))):
                await self._speak(ws, ctx, done, rate)
                pending[ctx] = ""
            if data.get("close_context"):
                await ws.send_json({"isFinal": True, "contextId": ctx})
        return ws

    @staticmethod
    async def _speak(ws: web.WebSocketResponse, ctx: str, text: str, rate: int) -> None:
        audio = tone(len(text), rate)
        await ws.send_json({
            "audio": base64.b64encode(audio).decode(), "isFinal": None, "contextId": ctx,
            "normalizedAlignment": {"chars": list(text),
                                    "charStartTimesMs": [i * MS_PER_CHAR for i in range(len(text))],
                                    "charDurationsMs": [MS_PER_CHAR] * len(text)}})
