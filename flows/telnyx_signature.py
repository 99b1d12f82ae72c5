"""Telnyx webhook signatures: Ed25519 over `"{timestamp}|{raw body}"`, five minutes' tolerance.

Telnyx signs every webhook with its account's Ed25519 key and sends the signature (base64) in
`telnyx-signature-ed25519` and the Unix time it signed at in `telnyx-timestamp`; the public key
is shown in the Telnyx portal (base64) and kept in the number's settings (`public_key`: it is
public, so not a secret). A signature older (or newer) than the tolerance is refused, so a
captured webhook cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import time

from aico.errors import Forbidden, ValidationFailed

TOLERANCE_S = 300
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


class TelnyxSignatureInvalid(Forbidden):
    code = "invalid_signature"


def public_key_bytes(public_key: str) -> bytes:
    """A Telnyx public key (base64 of 32 bytes) as bytes; ValidationFailed names the field."""
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValidationFailed("settings.public_key: a Telnyx public key is the base64 of 32"
                               " bytes (Mission Control Portal → Keys & Credentials)")
    return raw


def verify_telnyx_signature(raw_body: bytes, *, signature: str | None, timestamp: str | None,
                            public_key: str, now: float | None = None,
                            tolerance_s: int = TOLERANCE_S) -> None:
    """Raise TelnyxSignatureInvalid (403) unless `signature` is the key's Ed25519 signature of
    `timestamp|raw_body` and `timestamp` is within `tolerance_s` of now."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if not signature or not timestamp:
        raise TelnyxSignatureInvalid(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        signed_at = int(timestamp)
        signature_bytes = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        raise TelnyxSignatureInvalid(f"{TIMESTAMP_HEADER} or {SIGNATURE_HEADER} is malformed")\
            from None
    now = time.time() if now is None else now
    if abs(now - signed_at) > tolerance_s:
        raise TelnyxSignatureInvalid(
            f"{TIMESTAMP_HEADER} is {int(now - signed_at)} s from now, outside the"
            f" {tolerance_s} s tolerance: a replayed or delayed webhook")
    try:
        VerifyKey(public_key_bytes(public_key)).verify(
            timestamp.encode() + b"|" + raw_body, signature_bytes)
    except (BadSignatureError, ValueError, ValidationFailed):
        raise TelnyxSignatureInvalid(f"{SIGNATURE_HEADER} does not verify with the number's"
                                     " public key") from None
