"""What the voice tests arrange and read through the public HTTP API: a published flow's voice
session, the session as the dashboard shows it (status, whole transcript, metrics), its event
log, and a WebSocket that is expected to be refused."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID

# Where the voice tests' models run, pinned (AICO_MODELS): shared with the phone tests, and
# re-exported here for the voice tests that import them from this module.
from voice_support import MODELS_MODE, models_mode  # noqa: F401
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def publish_flow(api: Any, document: dict[str, Any]) -> str:
    r = await api.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 201, r.text
    flow_id = r.json()["id"]
    r = await api.post(f"/v1/flows/{flow_id}/publish")
    assert r.status_code == 201, r.text
    return flow_id


async def start_voice_session(api: Any, server: Any, flow_id: str) -> tuple[UUID, str]:
    r = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["voice"]["url"].startswith("ws") and body["voice"]["token"]
    return UUID(body["id"]), server.ws_url(body["voice"])


async def session_record(api: Any, session_id: UUID) -> dict[str, Any]:
    r = await api.get(f"/v1/sessions/{session_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_status(api: Any, session_id: UUID, status: str, *,
                      timeout: float = 30.0) -> dict[str, Any]:
    """The session once it has `status` (it is written after the socket closes)."""
    deadline = time.monotonic() + timeout
    while True:
        record = await session_record(api, session_id)
        if record["status"] == status:
            return record
        assert time.monotonic() < deadline, f"session is {record['status']}, not {status}"
        await asyncio.sleep(0.05)


async def stored_events(api: Any, session_id: UUID) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/sessions/{session_id}/events")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def transcript(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["role"], t["text"]) for t in record["transcript"]]


async def refused(url: str, *, timeout: float = 30.0) -> tuple[list[dict[str, Any]], int | None]:
    """Every message a socket got before the server closed it, and the close code."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), connect(url) as ws:
        try:
            async for message in ws:
                messages.append(json.loads(message) if isinstance(message, str)
                                else {"binary": len(message)})
        except ConnectionClosed:
            pass
        return messages, ws.close_code
