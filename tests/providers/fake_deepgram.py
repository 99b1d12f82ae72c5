"""A loopback stand-in for Deepgram's listen API, speaking its documented wire format.

Live: `GET /v1/listen` upgraded to a WebSocket, `Authorization: Token <key>`; binary linear16
audio in; JSON `Finalize`, `KeepAlive`, `CloseStream` messages in; `Results` (interim and
`is_final`) and `Metadata` messages out. Handshake errors are plain HTTP responses with
Deepgram's error body (`err_code`, `err_msg`, `request_id`).
Pre-recorded: `POST /v1/listen` with audio → `{"metadata", "results": {"channels": [...]}}`.

It cannot understand audio: it answers each utterance with the next scripted transcript.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Self

from aiohttp import WSMsgType, web

ERRORS = {401: ("INVALID_AUTH", "Invalid credentials."),
          429: ("TOO_MANY_REQUESTS", "Too many requests. Please try again later"),
          500: ("INTERNAL_SERVER_ERROR", "An internal server error occurred."),
          503: ("SERVICE_UNAVAILABLE", "Service unavailable.")}


@dataclass
class FakeDeepgram:
    api_key: str = "dg-test-key"
    transcripts: list[str] = field(default_factory=lambda: ["hello world"])
    # Status codes for the next connection attempts (then success).
    fail_next: list[int] = field(default_factory=list)
    # Close the next live socket abruptly after this many audio bytes (once).
    drop_after_bytes: int | None = None
    attempts: int = 0
    audio_bytes: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/listen", self._live)
        app.router.add_post("/v1/listen", self._prerecorded)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1/listen"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.attempts += 1
        self.queries.append(dict(request.query))
        status = None
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            status = 401
        elif self.fail_next:
            status = self.fail_next.pop(0)
        if status is None:
            return None
        code, msg = ERRORS[status]
        return web.json_response({"err_code": code, "err_msg": msg,
                                  "request_id": str(uuid.uuid4())}, status=status)

    def _next_transcript(self) -> str:
        return self.transcripts.pop(0) if len(self.transcripts) > 1 else self.transcripts[0]

    async def _live(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        rate = int(request.query.get("sample_rate", "16000"))
        request_id = str(uuid.uuid4())
        utterance, start = 0, 0.0
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                utterance += len(msg.data)
                self.audio_bytes += len(msg.data)
                if self.drop_after_bytes is not None and self.audio_bytes >= self.drop_after_bytes:
                    self.drop_after_bytes = None
                    request.transport.close()  # a dropped socket: no close frame
                    return ws
                if request.query.get("interim_results") == "true" and utterance >= rate:
                    # An interim result once a second of audio has arrived.
                    await ws.send_json(_results(self.transcripts[0].split()[0], start, 1.0,
                                                is_final=False, request_id=request_id))
                continue
            if msg.type != WSMsgType.TEXT:
                continue
            kind = json.loads(msg.data).get("type")
            if kind == "Finalize" and utterance:
                duration = utterance / (2 * rate)
                await ws.send_json(_results(self._next_transcript(), start, duration,
                                            is_final=True, request_id=request_id,
                                            from_finalize=True))
                start += duration
                utterance = 0
            elif kind == "CloseStream":
                await ws.send_json({"type": "Metadata", "transaction_key": "deprecated",
                                    "request_id": request_id, "sha256": "", "created": "",
                                    "duration": start, "channels": 1})
                await ws.close()
        return ws

    async def _prerecorded(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        await request.read()
        text = self._next_transcript()
        return web.json_response({
            "metadata": {"request_id": str(uuid.uuid4()), "duration": 1.0, "channels": 1},
            "results": {"channels": [{"alternatives": [{
                "transcript": text, "confidence": 0.98, "words": _words(text, 0.0, 1.0)}]}]},
        })


def _words(text: str, start: float, duration: float) -> list[dict]:
    words = text.split()
    step = duration / max(len(words), 1)
    return [{"word": w.lower().strip(".,"), "punctuated_word": w, "start": start + i * step,
             "end": start + (i + 1) * step, "confidence": 0.98} for i, w in enumerate(words)]


def _results(text: str, start: float, duration: float, *, is_final: bool, request_id: str,
             from_finalize: bool = False) -> dict:
    return {
        "type": "Results", "channel_index": [0, 1], "duration": duration, "start": start,
        "is_final": is_final, "speech_final": is_final, "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": text, "confidence": 0.98,
                                      "words": _words(text, start, duration)}]},
        "metadata": {"request_id": request_id,
                     "model_info": {"name": "nova-3", "version": "fake", "arch": "fake"},
                     "model_uuid": "fake"},
    }
