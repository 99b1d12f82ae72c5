"""AES-GCM encryption of organization secrets under a key that lives outside the database.

Keys come from `AICO_SECRET_KEY`: one url-safe base64 key of 32 bytes, or several as
`id1:key1,id2:key2` (the first encrypts; all decrypt, so keys can rotate: add the new key in
front, re-encrypt with `SecretBox.needs_rotation`, then drop the old one). With no key set
(embedded mode) one is generated once into `$AICO_HOME/secret-key` with mode 0600.
Every row stores the id of the key that sealed it, and the ciphertext is bound to its
organization and name (AES-GCM associated data), so rows cannot be swapped.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aico import private_files
from aico.errors import AicoError

KEY_FILE = "secret-key"


class SecretKeyError(AicoError):
    status, code = 500, "secret_key_error"


@dataclass(frozen=True)
class SealedSecret:
    key_id: str
    nonce: bytes
    ciphertext: bytes


def _decode_key(text: str) -> bytes:
    key = private_files.decode_key(text)
    if len(key) != 32:
        raise SecretKeyError("AICO_SECRET_KEY must be 32 bytes in url-safe base64 "
                             "(python -c 'import secrets,base64;print(base64.urlsafe_b64encode("
                             "secrets.token_bytes(32)).decode())')")
    return key


def key_id_of(key: bytes) -> str:
    return "k" + hashlib.sha256(b"aico-secret-key:" + key).hexdigest()[:12]


class SecretBox:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured")
        self.current_key_id = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    @classmethod
    def from_spec(cls, spec: str) -> SecretBox:
        keys = []
        for part in (p for p in spec.split(",") if p.strip()):
            kid, sep, material = part.strip().rpartition(":")
            key = _decode_key(material)
            keys.append((kid if sep and kid else key_id_of(key), key))
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: Any) -> SecretBox:
        spec = settings.security.secret_key
        if spec:
            return cls.from_spec(spec)
        return cls.from_spec(ensure_key_file(Path(settings.home)))

    def seal(self, value: str, *, org_id: UUID, name: str) -> SealedSecret:
        nonce = secrets.token_bytes(12)
        ct = self._keys[self.current_key_id].encrypt(nonce, value.encode(), _aad(org_id, name))
        return SealedSecret(self.current_key_id, nonce, ct)

    def open(self, sealed: SealedSecret, *, org_id: UUID, name: str) -> str:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise SecretKeyError(f"secret {name!r} was sealed with key {sealed.key_id}, which "
                                 "is not configured (AICO_SECRET_KEY)")
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, _aad(org_id, name)).decode()
        except InvalidTag:
            raise SecretKeyError(f"secret {name!r} does not decrypt with key "
                                 f"{sealed.key_id}") from None

    def needs_rotation(self, sealed: SealedSecret) -> bool:
        return sealed.key_id != self.current_key_id


def _aad(org_id: UUID, name: str) -> bytes:
    return f"aico-secret:{org_id}:{name}".encode()


def ensure_key_file(home: Path) -> str:
    """The embedded-mode key: read `$AICO_HOME/secret-key`, or create it once with mode 0600."""
    return private_files.ensure_key_file(Path(home) / KEY_FILE, nbytes=32, error=SecretKeyError)
