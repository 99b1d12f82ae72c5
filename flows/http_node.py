"""The `http` node's request: through the egress guard (`aico.egress`: resolve once, refuse
non-global targets unless the organization allow-listed them, connect to the checked address),
with a bounded response and total time, JSON when the server sends JSON.

Each call carries an `Idempotency-Key`: the node's call id, stable per (session, inbound event,
node, visit), so a receiver can de-duplicate the rare resend after a worker died mid-call.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from aico.egress import (
    EgressGuard,
    EgressRefused,
    EgressTimeout,
    EgressTooLarge,
)

MAX_RESPONSE_BYTES = 256 * 1024


def http_call_id(session_id: str, event_id: str, node_id: str, visit: int) -> str:
    """The same call id whenever the same event reaches the same node the same time."""
    raw = f"{session_id}\x1f{event_id}\x1f{node_id}\x1f{visit}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


async def http_request(
    *, method: str, url: str, headers: dict[str, str], body: Any, timeout_s: float,
    guard: EgressGuard, idempotency_key: str | None = None,
) -> dict[str, Any]:
    """`{"status", "body"}` on a response (any status), `{"status": 0, "error"}` otherwise
    (`"refused": True` when the egress guard refused the target; nothing was sent then)."""
    headers = dict(headers)
    if idempotency_key and not any(k.lower() == "idempotency-key" for k in headers):
        headers["Idempotency-Key"] = idempotency_key
    content: str | None = None
    payload: Any = None
    if body is not None and method != "GET":
        if isinstance(body, str):
            content = body
        else:
            payload = body
    try:
        response = await guard.request(
            method, url, headers=headers, content=content, json=payload, timeout_s=timeout_s,
            max_response_bytes=MAX_RESPONSE_BYTES)
    except EgressRefused as exc:
        return {"status": 0, "error": exc.message, "refused": True}
    except EgressTooLarge as exc:
        return {"status": exc.extra.get("status_code", 0), "error": exc.message}
    except EgressTimeout as exc:
        return {"status": 0, "error": exc.message}
    except httpx.HTTPError as exc:
        return {"status": 0, "error": f"{type(exc).__name__}: {exc}"[:500]}
    text = response.body.decode("utf-8", errors="replace")
    parsed: Any = text
    if "json" in response.content_type:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            pass
    return {"status": response.status, "body": parsed}
