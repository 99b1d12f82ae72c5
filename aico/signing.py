"""Signing: HMAC-SHA256 under `AICO_SIGNING_KEY`, with key ids and one subkey per purpose.

What AICO signs — voice tokens, calls' media links, the http node's callback URLs, outbound
webhooks — is signed here and nowhere else, with a key apart from the one that encrypts secrets
at rest. The key setting holds one url-safe base64 key (at least 32 bytes) or several as
`id1:key1,id2:key2`: the first signs, every one verifies, so a key can be rotated without
downtime (add the new key in front, wait out the old signatures' lifetime, drop the old key). A
signature carries its key id (`<kid>.<hex>`). Each purpose signs with its own subkey (HMAC of
the purpose under the key), so a signature made for one purpose never verifies for another.

With no key set (embedded mode) one is generated once into `$AICO_HOME/signing-key` (mode 0600).
With Ray workers on other nodes every process must share the key: `require_cluster_keys` is the
check `aico up` makes before starting.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from uuid import UUID

from aico import private_files
from aico.errors import AicoError
from aico.settings import Settings

Purpose = Literal["voice-token", "voice-media", "callback-url", "webhook"]
KEY_FILE = "signing-key"
MIN_KEY_BYTES = 32
_KID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class SigningKeyError(AicoError):
    """The signing key setting or file is unusable (a server misconfiguration, HTTP 500)."""

    status, code = 500, "signing_key_error"


def _decode_key(text: str) -> bytes:
    key = private_files.decode_key(text)
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"AICO_SIGNING_KEY must hold keys of at least {MIN_KEY_BYTES} bytes in url-safe base64"
            " (python -c 'import secrets,base64;print(base64.urlsafe_b64encode("
            "secrets.token_bytes(32)).decode())')")
    return key


def key_id_of(key: bytes) -> str:
    return "s" + hashlib.sha256(b"aico-signing-key:" + key).hexdigest()[:10]


class Signer:
    """Signs and verifies messages for one purpose at a time; the first key signs."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SigningKeyError("no signing key configured (AICO_SIGNING_KEY)")
        for kid, _ in keys:
            if not kid or len(kid) > 32 or not set(kid) <= _KID_CHARS:
                raise SigningKeyError(
                    f"signing key id {kid[:40]!r} must be 1-32 letters, digits, '_' or '-'")
        self.current_key_id = keys[0][0]
        self._roots = dict(keys)

    @classmethod
    def from_spec(cls, spec: str) -> Signer:
        keys = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, sep, material = part.rpartition(":")
            key = _decode_key(material)
            keys.append((kid if sep and kid else key_id_of(key), key))
        return cls(keys)

    def _subkey(self, kid: str, purpose: Purpose) -> bytes:
        return hmac.new(self._roots[kid], b"aico.signing/" + purpose.encode(),
                        hashlib.sha256).digest()

    def sign(self, purpose: Purpose, message: str) -> str:
        kid = self.current_key_id
        mac = hmac.new(self._subkey(kid, purpose), message.encode(), hashlib.sha256).hexdigest()
        return f"{kid}.{mac}"

    def verify(self, purpose: Purpose, message: str, signature: str) -> bool:
        kid, _, mac = signature.rpartition(".")
        if kid not in self._roots or len(mac) != 64:
            return False
        expected = hmac.new(self._subkey(kid, purpose), message.encode(),
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, mac)


def signer(settings: Settings) -> Signer:
    """The signer for these settings: `AICO_SIGNING_KEY`, else the embedded key file."""
    spec = settings.security.signing_key
    return _signer_for(spec) if spec else _signer_for(ensure_key_file(settings.home))


@lru_cache(maxsize=8)
def _signer_for(spec: str) -> Signer:
    return Signer.from_spec(spec)


def ensure_key_file(home: Path) -> str:
    """The embedded-mode key: read `$AICO_HOME/signing-key`, or create it once with mode 0600
    (never briefly readable by others; a concurrent first run reads the winner's key)."""
    return private_files.ensure_key_file(Path(home) / KEY_FILE, nbytes=MIN_KEY_BYTES,
                                         error=SigningKeyError)


def require_cluster_keys(settings: Settings, *, ray_address: str | None) -> None:
    """Refuse to start a server whose Ray workers run on other nodes with keys generated per
    node: each node would sign and encrypt with its own key and reject the others'."""
    if not ray_address or ray_address in ("local", "auto"):
        return
    missing = [name for name, value in (("AICO_SECRET_KEY", settings.security.secret_key),
                                        ("AICO_SIGNING_KEY", settings.security.signing_key))
               if not value]
    if missing:
        raise SigningKeyError(
            f"RAY_ADDRESS is set ({ray_address}): configure {' and '.join(missing)} on every"
            " node; generated per-node keys would not agree across the cluster")
    Signer.from_spec(settings.security.signing_key or "")


# --- voice tokens ------------------------------------------------------------------------------

def mint_voice_token(settings: Settings, session_id: UUID | str, *, ttl_s: int,
                     now: float | None = None) -> tuple[str, int]:
    """A token that opens the voice WebSocket of one session until `expires` (unix seconds):
    `<expires>.<kid>.<hmac>`."""
    expires = int((now or time.time()) + ttl_s)
    return f"{expires}.{signer(settings).sign('voice-token', f'{session_id}:{expires}')}", expires


def verify_voice_token(settings: Settings, session_id: UUID | str, token: str, *,
                       now: float | None = None) -> bool:
    expires_s, _, signature = token.partition(".")
    if not expires_s.isdigit() or len(expires_s) > 12:
        return False
    if int(expires_s) < (now or time.time()):
        return False
    return signer(settings).verify("voice-token", f"{session_id}:{expires_s}", signature)


# --- callback URLs -----------------------------------------------------------------------------

def sign_callback(settings: Settings, session_id: UUID | str, call_id: str) -> str:
    return signer(settings).sign("callback-url", f"{session_id}:{call_id}")


def verify_callback(settings: Settings, session_id: UUID | str, call_id: str,
                    signature: str) -> bool:
    return signer(settings).verify("callback-url", f"{session_id}:{call_id}", signature)
