"""Signing keys: one signer for voice tokens and callback URLs, apart from the secret-at-rest key,
with key ids (rotation without downtime) and a subkey per purpose; the embedded key file; the
cluster check `aico up` makes."""

from __future__ import annotations

import base64
import secrets
import stat
import uuid

import pytest

from aico.settings import SecuritySettings, Settings
from aico.signing import (
    Signer,
    SigningKeyError,
    ensure_key_file,
    mint_voice_token,
    require_cluster_keys,
    sign_callback,
    verify_callback,
    verify_voice_token,
)
from flows.callbacks import callback_url


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _settings(tmp_path, *, signing: str | None = None, secret: str | None = None) -> Settings:
    return Settings(home=tmp_path, security=SecuritySettings(signing_key=signing,
                                                             secret_key=secret))


def test_a_signature_names_its_key_and_old_keys_keep_verifying_during_rotation(tmp_path):
    old, new = _key(), _key()
    before = _settings(tmp_path, signing=f"old:{old}")
    during = _settings(tmp_path, signing=f"new:{new},old:{old}")
    after = _settings(tmp_path, signing=f"new:{new}")
    sid = uuid.uuid4()

    token, _ = mint_voice_token(before, sid, ttl_s=60)
    assert token.split(".")[1] == "old"
    assert verify_voice_token(during, sid, token)  # issued before the rotation, still good
    assert not verify_voice_token(after, sid, token)  # the old key is gone
    fresh, _ = mint_voice_token(during, sid, ttl_s=60)
    assert fresh.split(".")[1] == "new"
    assert verify_voice_token(after, sid, fresh)


def test_purposes_do_not_verify_each_other_and_messages_are_bound(tmp_path):
    settings = _settings(tmp_path, signing=_key())
    sid = uuid.uuid4()
    token, expires = mint_voice_token(settings, sid, ttl_s=60)
    voice_signature = token.split(".", 1)[1]
    # The voice token's signature over the same bytes is no callback signature.
    assert not verify_callback(settings, sid, str(expires), voice_signature)
    sig = sign_callback(settings, sid, "a" * 32)
    assert verify_callback(settings, sid, "a" * 32, sig)
    assert not verify_callback(settings, sid, "b" * 32, sig)
    assert not verify_callback(settings, uuid.uuid4(), "a" * 32, sig)
    assert not verify_voice_token(settings, sid, f"{expires}.{sig}")


def test_signing_is_apart_from_the_secret_key(tmp_path):
    secret = _key()
    sid = uuid.uuid4()
    # Knowing only the secret-at-rest key, a callback signature cannot be made.
    signing_only = _settings(tmp_path / "a", signing=_key(), secret=secret)
    forged = Signer.from_spec(f"x:{secret}").sign("callback-url", f"{sid}:{'c' * 32}")
    assert not verify_callback(signing_only, sid, "c" * 32, forged)
    url = callback_url(signing_only, sid, "c" * 32)
    sig = url.rsplit("sig=", 1)[1]
    assert verify_callback(signing_only, sid, "c" * 32, sig)


def test_embedded_mode_generates_a_private_key_file_once(tmp_path):
    settings = _settings(tmp_path)
    sid = uuid.uuid4()
    token, _ = mint_voice_token(settings, sid, ttl_s=60)
    path = tmp_path / "signing-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key_file(tmp_path) == path.read_text().strip()
    assert not (tmp_path / "secret-key").exists()  # signing does not touch the secret key
    assert verify_voice_token(_settings(tmp_path), sid, token)  # same key on the next start

    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        ensure_key_file(tmp_path)


def test_bad_keys_are_refused_with_a_message_naming_the_setting(tmp_path):
    with pytest.raises(SigningKeyError, match="AICO_SIGNING_KEY"):
        Signer.from_spec("k1:" + base64.urlsafe_b64encode(b"short").decode())
    with pytest.raises(SigningKeyError, match="key id"):
        Signer.from_spec("bad id!:" + _key())


def test_aico_up_on_a_cluster_needs_configured_keys(tmp_path):
    bare = _settings(tmp_path)
    require_cluster_keys(bare, ray_address=None)  # local Ray: generated keys are fine
    with pytest.raises(SigningKeyError) as refused:
        require_cluster_keys(bare, ray_address="ray://head:10001")
    assert "AICO_SECRET_KEY and AICO_SIGNING_KEY" in refused.value.message
    with pytest.raises(SigningKeyError, match="AICO_SIGNING_KEY"):
        require_cluster_keys(_settings(tmp_path, secret=_key()), ray_address="10.0.0.5:6379")
    require_cluster_keys(_settings(tmp_path, secret=_key(), signing=_key()),
                         ray_address="10.0.0.5:6379")
    assert not (tmp_path / "signing-key").exists()


def test_aico_up_refuses_to_join_a_cluster_without_configured_keys(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    aico = Path(sys.executable).parent / "aico"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICO_", "RAY_"))}
    env.update(AICO_HOME=str(tmp_path / "home"), RAY_ADDRESS="10.255.255.1:6379")
    done = subprocess.run([str(aico), "up"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "configure AICO_SECRET_KEY and AICO_SIGNING_KEY on every node" in output
    # Refused before anything started or was generated.
    assert not (tmp_path / "home" / "pg").exists()
    assert not (tmp_path / "home" / "signing-key").exists()
