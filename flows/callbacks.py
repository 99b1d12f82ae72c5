"""Signed per-call callback URLs for async `http` nodes.

The external service posts its result to
`{base_url}/v1/sessions/{session_id}/events?call_id=...&sig=...`; `sig` is an HMAC-SHA256 of
`session_id:call_id`, so the URL authorises exactly one result for one call.

The signing key is derived from `AICO_SECRET_KEY` when it is set (every API replica and worker
then agrees without sharing a file); otherwise it is a random key kept in
`$AICO_HOME/callback-key` (mode 0600), created on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode
from uuid import UUID

from aico.settings import Settings


def callback_key(settings: Settings) -> bytes:
    if settings.security.secret_key:
        key = settings.security.secret_key.encode()
        return hashlib.sha256(b"aico.callback-url:" + key).digest()
    return _file_key(settings.home / "callback-key")


@lru_cache(maxsize=8)
def _file_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def sign_call(settings: Settings, session_id: UUID | str, call_id: str) -> str:
    return hmac.new(callback_key(settings), f"{session_id}:{call_id}".encode(),
                    hashlib.sha256).hexdigest()


def verify_call(settings: Settings, session_id: UUID | str, call_id: str, sig: str) -> bool:
    return hmac.compare_digest(sign_call(settings, session_id, call_id), sig)


def callback_url(settings: Settings, session_id: UUID | str, call_id: str) -> str:
    query = urlencode({"call_id": call_id, "sig": sign_call(settings, session_id, call_id)})
    return f"{settings.base_url.rstrip('/')}/v1/sessions/{session_id}/events?{query}"
