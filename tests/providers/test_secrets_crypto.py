"""AES-GCM secret sealing: round trip, binding to the row, key files and rotation."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from types import SimpleNamespace
from uuid import uuid4

import pytest

from providers.secrets_crypto import SecretBox, SecretKeyError, ensure_key_file


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def test_round_trip_and_the_ciphertext_is_bound_to_its_org_and_name():
    box = SecretBox.from_spec(new_key())
    org = uuid4()
    sealed = box.seal("sk-live-123", org_id=org, name="OPENAI_API_KEY")
    assert b"sk-live-123" not in sealed.ciphertext
    assert box.open(sealed, org_id=org, name="OPENAI_API_KEY") == "sk-live-123"
    with pytest.raises(SecretKeyError, match="does not decrypt"):
        box.open(sealed, org_id=uuid4(), name="OPENAI_API_KEY")
    with pytest.raises(SecretKeyError):
        box.open(sealed, org_id=org, name="OTHER")
    # A fresh nonce each time: equal values do not give equal ciphertexts.
    assert box.seal("x", org_id=org, name="A").ciphertext != \
        box.seal("x", org_id=org, name="A").ciphertext


def test_rotation_reads_old_rows_and_writes_with_the_new_key():
    old, new = new_key(), new_key()
    org = uuid4()
    sealed_old = SecretBox.from_spec(f"2025:{old}").seal("v", org_id=org, name="N")
    rotated = SecretBox.from_spec(f"2026:{new},2025:{old}")
    assert rotated.open(sealed_old, org_id=org, name="N") == "v"
    assert rotated.needs_rotation(sealed_old)
    assert rotated.seal("v", org_id=org, name="N").key_id == "2026"
    with pytest.raises(SecretKeyError, match="key 2025, which is not configured"):
        SecretBox.from_spec(f"2026:{new}").open(sealed_old, org_id=org, name="N")


def test_a_malformed_key_is_refused_with_a_hint():
    with pytest.raises(SecretKeyError, match="32 bytes"):
        SecretBox.from_spec("too-short")


def test_embedded_mode_generates_one_key_file_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("AICO_SECRET_KEY", raising=False)
    settings = SimpleNamespace(home=tmp_path / "home", security=SimpleNamespace(secret_key=None))
    box = SecretBox.from_settings(settings)
    key_file = tmp_path / "home" / "secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = SecretBox.from_settings(settings)
    assert again.current_key_id == box.current_key_id
    org = uuid4()
    assert again.open(box.seal("v", org_id=org, name="N"), org_id=org, name="N") == "v"


def test_a_key_file_others_can_read_is_refused(tmp_path):
    ensure_key_file(tmp_path)
    os.chmod(tmp_path / "secret-key", 0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        ensure_key_file(tmp_path)
