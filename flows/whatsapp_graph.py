"""Meta's Graph API for WhatsApp, the one call the channel makes: send a message.

    wamid = await send_message(settings, phone_number_id="1065…", access_token=token,
                               body={"type": "text", "text": {"body": "Hi"}}, to="4915…")
    # GraphError(code, message): Meta's documented error object, `retryable` for rate limits.

Plain httpx through the egress guard (not `pywa`): the channel needs one endpoint, the durable
outbox owns retries and ordering, and every outbound connection must be the guard's pinned one.
The base URL and version come from settings (`AICO_WHATSAPP_GRAPH_URL`, `_GRAPH_VERSION`), so a
loopback server can stand in for Meta; the operator chose that host, so it is allowed through
the guard by name while the guard still pins the address and bounds the response.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from aico.egress import EgressGuard
from aico.settings import Settings

# Meta's codes: throughput / pair rate limits (retry later), the 24-hour window (re-engage with
# a template), an expired or invalid access token (a person must fix it).
RATE_LIMITED = frozenset({130429, 131056})
REENGAGEMENT_REQUIRED = 131047
TOKEN_INVALID = 190
MAX_ANSWER_BYTES = 64 * 1024


class GraphError(Exception):
    def __init__(self, code: int | None, message: str, *, http_status: int) -> None:
        super().__init__(f"Graph API error {code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        return self.code in RATE_LIMITED or self.http_status >= 500


def graph_guard(settings: Settings) -> EgressGuard:
    host = urlsplit(settings.whatsapp.graph_url).hostname or ""
    return EgressGuard(allowlist=[host] if host else [])


def graph_client(settings: Settings, *, timeout_s: float = 15.0) -> httpx.AsyncClient:
    """A client whose every connection passes the guard; a worker keeps one, so connections to
    the Graph API are reused (a new client per message costs tens of milliseconds)."""
    return graph_guard(settings).client(timeout=timeout_s)


async def send_message(settings: Settings, *, phone_number_id: str, access_token: str, to: str,
                       body: dict[str, Any], client: httpx.AsyncClient | None = None) -> str:
    """Send one message (`body`: the type and its object) and return Meta's message id."""
    wa = settings.whatsapp
    url = f"{wa.graph_url.rstrip('/')}/{wa.graph_version}/{phone_number_id}/messages"
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **body}
    headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(graph_client(settings))
        async with client.stream("POST", url, json=payload, headers=headers) as response:
            raw = b""
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    raise GraphError(None, f"the answer is over {MAX_ANSWER_BYTES} bytes",
                                     http_status=response.status_code)
            status = response.status_code
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if status >= 400 or "error" in answer:
        error = answer.get("error") if isinstance(answer, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        raise GraphError(code if isinstance(code, int) else None,
                         str(error.get("message") or f"HTTP {status}")[:500],
                         http_status=status)
    try:
        return str(answer["messages"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise GraphError(None, "the answer names no message id", http_status=status) from None
