"""Test helpers for the flow engine: a deterministic ChatLLM (unit tests only; the acceptance
test uses the real offline model), a loopback HTTP server, and flow publishing over the API."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import httpx

from providers.llm import ChatLLM, ChatMessage, LLMCapabilities, LLMChunk, Usage


class ScriptedLLM(ChatLLM):
    """Replies "You said: <last user text>" in word chunks. With a JSON-schema response_format
    it answers `key=value` pairs found in the user's text for the schema's properties (null for
    the rest), like a model doing structured extraction would."""

    kind = "scripted"
    capabilities = LLMCapabilities(streaming=True, tools=False, json_schema=True)

    def __init__(self, *, gate: asyncio.Event | None = None,
                 on_first_chunk: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.gate = gate
        self.on_first_chunk = on_first_chunk
        self.requests: list[list[ChatMessage]] = []

    async def _chat_impl(self, messages: list[ChatMessage], *, tools: Any, response_format: Any,
                         temperature: Any, max_tokens: Any, spoken: bool = False,
                         ) -> AsyncIterator[LLMChunk]:
        self.requests.append(messages)
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if response_format:
            props = response_format["json_schema"]["schema"]["properties"]
            found = dict(re.findall(r"(\w+)=(\S+)", user))
            yield LLMChunk(text=json.dumps({k: found.get(k) for k in props}),
                           finish_reason="stop")
            return
        words = f"You said: {user}".split(" ")
        for i, word in enumerate(words):
            yield LLMChunk(text=word if i == 0 else " " + word)
            if i == 0:
                if self.on_first_chunk:
                    self.on_first_chunk()
                if self.gate is not None:
                    await self.gate.wait()
        yield LLMChunk(usage=Usage(prompt_tokens=len(messages), completion_tokens=len(words)),
                       finish_reason="stop")


def scripted_opener(llm: ScriptedLLM | None = None) -> Callable[[dict], Any]:
    async def open_llm(config: dict) -> ChatLLM:
        return llm or ScriptedLLM()
    return open_llm


class LoopbackHTTP:
    """A real HTTP server on 127.0.0.1 that records requests and answers JSON (or, when told,
    a redirect to `redirect_to`, or a body of `body_bytes` bytes)."""

    def __init__(self, *, redirect_to: str | None = None, body_bytes: int | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.redirect_to = redirect_to
        self.body_bytes = body_bytes
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers), "body": body})
                if outer.redirect_to:
                    self.send_response(302)
                    self.send_header("location", outer.redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                payload = json.dumps({"ok": True, "path": self.path, "echo": body}).encode()
                if outer.body_bytes is not None:
                    payload = b"x" * outer.body_bytes
                status = 202 if "async" in self.path else 200
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def allow_loopback(client: httpx.AsyncClient) -> None:
    """Let the organization's flows reach 127.0.0.1 (the loopback test servers)."""
    r = await client.put("/v1/org/egress-allowlist", json={"hosts": ["127.0.0.1"]})
    assert r.status_code == 200, r.text


async def publish(client: httpx.AsyncClient, document: dict[str, Any]) -> str:
    r = await client.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 201, r.text
    flow_id = r.json()["id"]
    r = await client.post(f"/v1/flows/{flow_id}/publish")
    assert r.status_code == 201, r.text
    return flow_id


async def start_chat(client: httpx.AsyncClient, flow_id: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "chat", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def send(client: httpx.AsyncClient, session_id: str, text: str,
               **body: Any) -> dict[str, Any]:
    r = await client.post(f"/v1/sessions/{session_id}/messages", json={"text": text, **body})
    assert r.status_code == 200, r.text
    return r.json()


def texts(reply: dict[str, Any]) -> list[str]:
    return [m["text"] for m in reply["messages"]]


def linear(name: str, *nodes: dict[str, Any], edges: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    """start -> nodes[0] -> nodes[1] ... unless `edges` are given."""
    all_nodes = [{"id": "start", "type": "start"}, *nodes]
    if edges is None:
        edges = [{"from": a["id"], "to": b["id"]} for a, b in pairwise(all_nodes)]
    return {"name": name, "nodes": all_nodes, "edges": edges}


def every_node_flow(child_flow_id: str, http_url: str) -> dict[str, Any]:
    """start, say, collect, sync and async http, set, subflow, transfer, llm, listen, end."""
    nodes = [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": "Welcome!"},
        {"id": "form", "type": "collect", "prompt": "Your name?",
         "fields": {"name": {"type": "string", "description": "the caller's name"}}},
        {"id": "lookup", "type": "http", "method": "POST", "url": http_url + "/lookup",
         "body": {"name": "x"}, "into": "crm"},
        {"id": "notify", "type": "http", "method": "POST", "url": http_url + "/async",
         "async": True, "into": "ticket"},
        {"id": "score", "type": "set", "assign": {"vip": "crm['status'] == 200"}},
        {"id": "verify", "type": "subflow", "flow_id": child_flow_id,
         "inputs": {"who": "{{ name }}"}, "into": "verified"},
        {"id": "handoff", "type": "transfer", "to": "sip:crm@example.com", "mode": "warm"},
        {"id": "answer", "type": "llm", "instructions": "Greet {{ name }}.", "into": "answer"},
        {"id": "hear", "type": "listen", "into": "last"},
        {"id": "vip_bye", "type": "say",
         "text": "Bye {{ name }} (vip={{ vip }}, pin={{ verified.pin }}, ticket={{ ticket.id }})"},
        {"id": "bye", "type": "say", "text": "Bye."},
        {"id": "done", "type": "end", "reason": "finished"},
    ]
    order = ["start", "greet", "form", "lookup", "notify", "score", "verify", "handoff",
             "answer", "hear"]
    edges = [{"from": a, "to": b} for a, b in pairwise(order)]
    edges += [{"from": "hear", "to": "vip_bye", "when": "vip"}, {"from": "hear", "to": "bye"},
              {"from": "vip_bye", "to": "done"}, {"from": "bye", "to": "done"}]
    return {"name": "everything", "nodes": nodes, "edges": edges}
