"""Flows that would run without bound end with a recorded reason instead: a flow that calls
itself as a subflow, a step that makes too many external calls, a step that overruns its
deadline. And an http node's POST is sent once per logical call, even when two chat messages
race and one step is retried after losing the optimistic version race."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "flows"))

from flow_fakes import LoopbackHTTP, linear, publish, send, start_chat, texts


async def allow_loopback(client) -> None:
    r = await client.put("/v1/org/egress-allowlist", json={"hosts": ["127.0.0.1"]})
    assert r.status_code == 200, r.text


async def events_of(client, session_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/sessions/{session_id}/events")
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def sessions_of(client, flow_id: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/sessions", params={"flow_id": flow_id, "limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def failed_payload(events: list[dict[str, Any]]) -> dict[str, Any]:
    (payload,) = [e["payload"] for e in events if e["type"] == "session.failed"]
    return payload


async def test_a_flow_that_calls_itself_stops_at_the_depth_limit(api, app):
    limit = app.state.aico.settings.limits.flow_subflow_depth
    r = await api.post("/v1/flows", json={"name": "ouroboros", "document": linear(
        "ouroboros", {"id": "bye", "type": "end", "reason": "done"})})
    assert r.status_code == 201, r.text
    flow_id, revision = r.json()["id"], r.json()["draft_revision"]
    doc = linear("ouroboros",
                 {"id": "again", "type": "subflow", "flow_id": flow_id, "into": "inner"},
                 {"id": "back", "type": "say", "text": "back"},
                 {"id": "bye", "type": "end", "reason": "done"})
    r = await api.put(f"/v1/flows/{flow_id}", json={"document": doc, "draft_revision": revision})
    assert r.status_code == 200, r.text
    assert (await api.post(f"/v1/flows/{flow_id}/publish")).status_code == 201

    started = await start_chat(api, flow_id)
    # The deepest session failed; every session above it resumed, said "back" and ended.
    assert texts(started) == ["back"] * limit
    assert started["status"] == "ended"
    sessions = await sessions_of(api, flow_id)
    assert len(sessions) == limit + 1
    failed = [s for s in sessions if s["status"] == "failed"]
    assert len(failed) == 1
    assert sorted(s["status"] for s in sessions) == ["ended"] * limit + ["failed"]
    reason = failed_payload(await events_of(api, failed[0]["id"]))
    assert reason["reason"] == "subflow_depth_limit" and reason["node_id"] == "again"
    assert f"deeper than {limit}" in reason["message"]


async def test_too_many_external_calls_in_one_step_fail_the_session(api, app):
    limit = app.state.aico.settings.limits.flow_external_calls_per_step
    server = LoopbackHTTP()
    try:
        await allow_loopback(api)
        calls = [{"id": f"call{i}", "type": "http", "url": f"{server.url}/n{i}", "into": f"r{i}"}
                 for i in range(limit + 1)]
        flow = await publish(api, linear("chatty", *calls,
                                         {"id": "done", "type": "say", "text": "done"}))
        started = await start_chat(api, flow)
        assert started["status"] == "failed" and started["messages"] == []
        assert [a["reason"] for a in started["actions"] if a["kind"] == "end"] == [
            "external_call_limit"]
        # The call over the limit was never sent.
        assert [r["path"] for r in server.requests] == [f"/n{i}" for i in range(limit)]
        reason = failed_payload(await events_of(api, started["id"]))
        assert reason["node_id"] == f"call{limit}"
        assert f"more than {limit} external calls" in reason["message"]
    finally:
        server.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_a_step_over_its_deadline_fails_the_session(api, app, silent_server, monkeypatch):
    monkeypatch.setattr(app.state.aico.settings.limits, "flow_step_deadline_s", 1.0)
    await allow_loopback(api)
    flow = await publish(api, linear(
        "stuck", {"id": "call", "type": "http", "url": silent_server + "/hang", "timeout_s": 60,
                  "into": "res"},
        {"id": "done", "type": "say", "text": "never"}))
    started = await start_chat(api, flow)
    assert started["status"] == "failed" and started["messages"] == []
    reason = failed_payload(await events_of(api, started["id"]))
    assert reason["reason"] == "step_deadline" and reason["node_id"] == "call"
    assert "longer than 1 s" in reason["message"]
    r = await api.post(f"/v1/sessions/{started['id']}/messages", json={"text": "hello?"})
    assert r.status_code == 409


class GatedServer:
    """Records POSTs; holds every answer until `expected` requests have arrived (or a few
    seconds passed), so that racing steps both call out before either commits."""

    def __init__(self, expected: int) -> None:
        self.requests: list[dict[str, Any]] = []
        self.all_in = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                outer.requests.append({"key": self.headers.get("Idempotency-Key"),
                                       "body": json.loads(body)})
                if len(outer.requests) >= expected:
                    outer.all_in.set()
                outer.all_in.wait(timeout=5)
                payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_racing_messages_send_one_post_per_logical_call(api):
    server = GatedServer(expected=2)
    try:
        await allow_loopback(api)
        doc = linear(
            "orders",
            {"id": "hear", "type": "listen", "into": "item"},
            {"id": "order", "type": "http", "method": "POST", "url": server.url + "/orders",
             "body": '{"item": "{{ item }}"}', "into": "res"},
            {"id": "ok", "type": "say", "text": "ordered {{ item }}"},
            edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "order"},
                   {"from": "order", "to": "ok"}, {"from": "ok", "to": "hear"}])
        session = (await start_chat(api, await publish(api, doc)))["id"]

        replies = await asyncio.gather(
            send(api, session, "tea", event_id="m-tea"),
            send(api, session, "cake", event_id="m-cake"))
        assert sorted(t for r in replies for t in texts(r)) == ["ordered cake", "ordered tea"]
        # Both steps called out before either committed; the one that lost the version race
        # was retried and reused its recorded call instead of sending the POST again.
        assert sorted(r["body"]["item"] for r in server.requests) == ["cake", "tea"]
        keys = [r["key"] for r in server.requests]
        assert len(set(keys)) == 2 and all(keys)

        # The same message delivered again changes nothing and calls nobody.
        again = await send(api, session, "tea", event_id="m-tea")
        assert texts(again) == texts(replies[0])
        assert len(server.requests) == 2
        called = [e["payload"] for e in await events_of(api, session)
                  if e["type"] == "http.called"]
        assert len(called) == 2 and all(c["status"] == 200 for c in called)
    finally:
        server.close()
