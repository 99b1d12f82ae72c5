"""Signed per-call callback URLs for async `http` nodes.

The external service posts its result to
`{base_url}/v1/sessions/{session_id}/events?call_id=...&sig=...`; `sig` is the signing key's
signature (`aico.signing`, purpose `callback-url`) of `session_id:call_id`, so the URL
authorises exactly one result for one call.
"""

from __future__ import annotations

from urllib.parse import urlencode
from uuid import UUID

from aico.settings import Settings
from aico.signing import sign_callback, verify_callback

# What the callback route accepts as `sig`: `<key id>.<hex HMAC-SHA256>`. A bare HMAC (URLs
# signed before key ids) is accepted in shape so it gets a clear 403, and never verifies.
SIGNATURE_PATTERN = r"^(?:[A-Za-z0-9_-]{1,32}\.)?[0-9a-f]{64}$"


def sign_call(settings: Settings, session_id: UUID | str, call_id: str) -> str:
    return sign_callback(settings, session_id, call_id)


def verify_call(settings: Settings, session_id: UUID | str, call_id: str, sig: str) -> bool:
    return verify_callback(settings, session_id, call_id, sig)


def callback_url(settings: Settings, session_id: UUID | str, call_id: str) -> str:
    query = urlencode({"call_id": call_id, "sig": sign_call(settings, session_id, call_id)})
    return f"{settings.base_url.rstrip('/')}/v1/sessions/{session_id}/events?{query}"
