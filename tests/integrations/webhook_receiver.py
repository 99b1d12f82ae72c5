"""A webhook receiver on loopback: a real HTTP server that records every delivery (headers and
raw body) and answers 500 to the first `fail_first` requests, 204 after."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # time.time() when it arrived


class WebhookReceiver:
    def __init__(self, *, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer._lock:
                    status = 500 if len(outer.received) < outer.fail_first else 204
                    outer.received.append(Received(dict(self.headers), body, status, time.time()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/aico"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    async def wait_for(self, condition: Callable[[list[Received]], bool], *,
                       timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while not condition(list(self.received)):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver never got what was expected: {self.received}")
            await asyncio.sleep(0.05)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
