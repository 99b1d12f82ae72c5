"""`aico secrets rotate`: every secret re-encrypted under the first key of AICO_SECRET_KEY while
both keys still open them, values unchanged, and nothing else touched."""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from aico.settings import SecuritySettings, Settings
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_pool
from db.secrets_rotation import update_sealed_secret_if_unchanged
from providers.secrets import load_secrets, store_secret
from providers.secrets_crypto import SecretKeyError


def _key() -> str:
    return base64.urlsafe_b64encode(pysecrets.token_bytes(32)).decode()


async def _fresh_database(pg_dsn: str) -> str:
    name = "rotate_" + pysecrets.token_hex(4)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = pg_dsn.replace("/postgres?", f"/{name}?")
    await prepare_database(dsn)
    return dsn


def _rotate(tmp_path: Path, dsn: str, secret_key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICO_", "RAY_"))}
    env.update(AICO_HOME=str(tmp_path / "home"), AICO_DATABASE_URL=dsn)
    if secret_key is not None:
        env["AICO_SECRET_KEY"] = secret_key
    aico = Path(sys.executable).parent / "aico"
    return subprocess.run([str(aico), "secrets", "rotate"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


async def test_rotate_re_encrypts_every_secret_under_the_new_key(tmp_path, pg_dsn):
    dsn = await _fresh_database(pg_dsn)
    old, new = _key(), _key()
    before = Settings(home=tmp_path, security=SecuritySettings(secret_key=f"old:{old}"))
    during = Settings(home=tmp_path, security=SecuritySettings(secret_key=f"new:{new},old:{old}"))
    after = Settings(home=tmp_path, security=SecuritySettings(secret_key=f"new:{new}"))
    values = {"DEEPGRAM_API_KEY": "dg-" + pysecrets.token_hex(8),
              "ELEVEN_API_KEY": "el-" + pysecrets.token_hex(8)}
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        orgs = [await insert_organization(pool, slug=f"o{i}-{pysecrets.token_hex(3)}", name="o")
                for i in range(2)]
        for org in orgs:
            for name, value in values.items():
                await store_secret(pool, org_id=org["id"], name=name, value=value,
                                   settings=before)
        stored_before = {(r["org_id"], r["name"]): (r["ciphertext"], r["updated_at"])
                         for r in await pool.fetch("SELECT * FROM secrets")}
        assert {r["key_id"] for r in await pool.fetch("SELECT key_id FROM secrets")} == {"old"}
        # The new key in front: every process reads with both before anything is re-encrypted.
        for org in orgs:
            assert await load_secrets(pool, org_id=org["id"], names=list(values),
                                      settings=during) == values

        done = _rotate(tmp_path, dsn, f"new:{new},old:{old}")
        assert done.returncode == 0, done.stderr
        assert "re-encrypted 4 secret(s) under key new" in done.stdout
        rows = await pool.fetch("SELECT * FROM secrets")
        assert {r["key_id"] for r in rows} == {"new"}
        for r in rows:
            ciphertext, updated_at = stored_before[(r["org_id"], r["name"])]
            assert r["ciphertext"] != ciphertext and r["updated_at"] == updated_at
        # The old key can go now; values are what they were.
        for org in orgs:
            assert await load_secrets(pool, org_id=org["id"], names=list(values),
                                      settings=after) == values
            with pytest.raises(SecretKeyError):
                await load_secrets(pool, org_id=org["id"], names=list(values), settings=before)

        again = _rotate(tmp_path, dsn, f"new:{new},old:{old}")
        assert again.returncode == 0 and "re-encrypted 0 secret(s)" in again.stdout
    finally:
        await pool.close()


async def test_a_secret_written_during_the_rotation_is_not_overwritten(tmp_path, pg_dsn):
    dsn = await _fresh_database(pg_dsn)
    old, new = _key(), _key()
    before = Settings(home=tmp_path, security=SecuritySettings(secret_key=f"old:{old}"))
    during = Settings(home=tmp_path, security=SecuritySettings(secret_key=f"new:{new},old:{old}"))
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        org = await insert_organization(pool, slug="w-" + pysecrets.token_hex(3), name="w")
        await store_secret(pool, org_id=org["id"], name="K", value="first", settings=before)
        stale = await pool.fetchrow("SELECT * FROM secrets WHERE org_id = $1", org["id"])
        # An admin writes a new value between the rotation's read and its write.
        await store_secret(pool, org_id=org["id"], name="K", value="second", settings=during)
        async with pool.acquire() as conn:
            assert not await update_sealed_secret_if_unchanged(
                conn, org_id=org["id"], name="K", old_key_id=stale["key_id"],
                old_nonce=stale["nonce"], key_id="new", nonce=b"0" * 12, ciphertext=b"x")
        assert await load_secrets(pool, org_id=org["id"], names=["K"],
                                  settings=during) == {"K": "second"}
    finally:
        await pool.close()


async def test_rotate_without_a_configured_key_explains_what_to_set(tmp_path, pg_dsn):
    done = _rotate(tmp_path, pg_dsn, None)
    assert done.returncode == 2
    assert "AICO_SECRET_KEY='new:<key>,<old key>'" in done.stderr
