"""A loopback stand-in for Meta's Graph API (WhatsApp Cloud API), speaking its documented shapes,
and helpers that build signed webhook notifications the way Meta sends them.

`POST /{version}/{phone-number-id}/messages` with `Authorization: Bearer <token>` answers
`{"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid..."}]}`; a test
may queue failures (`fail_next(130429)`), answered as Meta's error object
`{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import itertools
import json
import secrets
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_MESSAGES = {
    130429: (400, "(#130429) Rate limit hit"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    131047: (400, "(#131047) Re-engagement message"),
    190: (401, "Error validating access token: Session has expired"),
}


class GraphStandIn:
    def __init__(self, *, token: str) -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []  # accepted messages: path, payload, id
        self.refused: list[dict[str, Any]] = []  # answered with an error
        self._failures: deque[int] = deque()
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4).upper()
        self.media: dict[str, tuple[bytes, str]] = {}  # media id -> (bytes, mime type)
        self.media_downloads: list[str] = []
        self.uploads: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, content_type, raw = outer._get(self.path,
                                                       self.headers.get("authorization"))
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw_body = self.rfile.read(length)
                content_type = self.headers.get("content-type") or ""
                if content_type.startswith("multipart/form-data"):
                    status, answer = outer._upload(self.path, self.headers.get("authorization"),
                                                   content_type, raw_body)
                else:
                    status, answer = outer._answer(self.path, self.headers.get("authorization"),
                                                   json.loads(raw_body or b"{}"))
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_media(self, data: bytes, mime_type: str) -> str:
        media_id = str(10**15 + len(self.media))
        self.media[media_id] = (data, mime_type)
        return media_id

    def _get(self, path: str, authorization: str | None) -> tuple[int, str, bytes]:
        """`GET /{version}/{media-id}` (the media's URL) and `GET /media/{id}` (its bytes)."""
        if authorization != f"Bearer {self.token}":
            return 401, "application/json", json.dumps(_error(190, "Invalid token", 401)[1]).encode()
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) == 2 and parts[1] in self.media:
            data, mime = self.media[parts[1]]
            if parts[0] == "media":
                self.media_downloads.append(parts[1])
                return 200, mime, data
            info = {"messaging_product": "whatsapp", "url": f"{self.url}/media/{parts[1]}",
                    "mime_type": mime, "sha256": hashlib.sha256(data).hexdigest(),
                    "file_size": len(data), "id": parts[1]}
            return 200, "application/json", json.dumps(info).encode()
        return 404, "application/json", json.dumps(_error(100, "Unknown media", 404)[1]).encode()

    def _upload(self, path: str, authorization: str | None, content_type: str,
                raw: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /{version}/{phone-number-id}/media`, multipart: messaging_product, type, file."""
        if authorization != f"Bearer {self.token}":
            return _error(190, "Invalid token", 401)[0], _error(190, "Invalid token", 401)[1]
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[2] != "media":
            return 404, _error(100, "Unknown path components", 404)[1]
        message = email.message_from_bytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw,
            policy=email.policy.HTTP)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_content_type(), part.get_payload(decode=True))
        if "file" not in fields or fields.get("messaging_product", (None, b""))[1] != b"whatsapp":
            return 400, _error(100, "Param file and messaging_product are required", 400)[1]
        mime, data = fields["file"]
        media_id = self.add_media(data, mime)
        self.uploads.append(media_id)
        return 200, {"id": media_id}

    def fail_next(self, code: int, times: int = 1) -> None:
        self._failures.extend([code] * times)

    def _answer(self, path: str, authorization: str | None,
                payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            parts = path.strip("/").split("/")
            if len(parts) != 3 or parts[2] != "messages" or not parts[0].startswith("v"):
                return 404, _error(100, "Unknown path components", 400)[1]
            code = self._failures.popleft() if self._failures else None
            if code is None and authorization != f"Bearer {self.token}":
                code = 190
            if code is not None:
                status, answer = _error(code, *ERROR_MESSAGES.get(code, (400, "error"))[::-1])
                self.refused.append({"path": path, "payload": payload, "code": code})
                return status, answer
            wamid = f"wamid.OUT{self._prefix}{next(self._ids):06d}"
            self.sent.append({"path": path, "payload": payload, "id": wamid})
            return 200, {"messaging_product": "whatsapp",
                         "contacts": [{"input": payload.get("to"), "wa_id": payload.get("to")}],
                         "messages": [{"id": wamid}]}

    def texts_to(self, wa_user: str) -> list[str]:
        return [m["payload"]["text"]["body"] for m in self.sent
                if m["payload"].get("to") == wa_user and m["payload"].get("type") == "text"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _error(code: int, message: str, status: int) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "OAuthException", "code": code,
                              "error_data": {"messaging_product": "whatsapp",
                                             "details": message},
                              "fbtrace_id": "AbCdEf123"}}


def sign(app_secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def text_message(wa_user: str, wamid: str, text: str, timestamp: int) -> dict[str, Any]:
    return {"from": wa_user, "id": wamid, "timestamp": str(timestamp), "type": "text",
            "text": {"body": text}}


def notification(phone_number_id: str, *, messages: list[dict[str, Any]] | None = None,
                 statuses: list[dict[str, Any]] | None = None,
                 display: str = "15550001111") -> dict[str, Any]:
    """One entry with one `messages` change, as Meta sends it."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": "Kai"}, "wa_id": m["from"]} for m in messages]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value,
                                                             "field": "messages"}]}]}


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy, failing after the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {result!r})")
        await asyncio.sleep(0.05)
