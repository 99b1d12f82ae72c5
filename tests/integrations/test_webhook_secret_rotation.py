"""`aico secrets rotate` re-seals webhook signing secrets too: after it, the old key can go and
deliveries are still signed with the secret the integrator was shown."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets as pysecrets
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from integration_flows import ECHO
from standardwebhooks import Webhook
from webhook_receiver import WebhookReceiver

from aico.settings import SecuritySettings, Settings
from db.api_clients import insert_api_client, new_token
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_app_pool, create_pool
from flows.webhook_outbox import WebhookOutbox, open_signing_secret
from providers.secrets_crypto import SecretKeyError
from serve_apps.routes.widgets import sign_visitor


def _key() -> str:
    return base64.urlsafe_b64encode(pysecrets.token_bytes(32)).decode()


async def _fresh_database(pg_dsn: str) -> str:
    # Its own database: the rotation spans every organization, so it must not touch the
    # session's shared one.
    name = "rotate_hooks_" + pysecrets.token_hex(4)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = pg_dsn.replace("/postgres?", f"/{name}?")
    await prepare_database(dsn)
    return dsn


async def test_rotation_re_seals_webhook_secrets_and_deliveries_still_verify(tmp_path, pg_dsn):
    from serve_apps.api import create_app

    dsn = await _fresh_database(pg_dsn)
    old, new = _key(), _key()
    before = Settings(home=tmp_path, database_url=dsn,
                      security=SecuritySettings(secret_key=f"old:{old}"))
    after = Settings(home=tmp_path, database_url=dsn,
                     security=SecuritySettings(secret_key=f"new:{new}"))
    owner = await create_pool(dsn, min_size=1, max_size=2)
    app_pool = await create_app_pool(before, min_size=1, max_size=4)
    receiver = WebhookReceiver()
    try:
        org = await insert_organization(owner, slug="rot-" + pysecrets.token_hex(3), name="o")
        token = new_token()
        await insert_api_client(owner, org_id=org["id"], name="t", token=token)
        async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(before, pool=app_pool)),
                base_url="http://aico.test", headers={"Authorization": f"Bearer {token}"}) as api:
            assert (await api.put("/v1/org/egress-allowlist",
                                  json={"hosts": ["127.0.0.1"]})).status_code == 200
            hook = (await api.post("/v1/webhooks", json={
                "url": receiver.url, "events": ["session.started"]})).json()
            flow = (await api.post("/v1/flows", json={"name": "e", "document": ECHO})).json()
            assert (await api.post(f"/v1/flows/{flow['id']}/publish")).status_code == 201
            widget = (await api.post("/v1/widgets", json={
                "flow_id": flow["id"], "allowed_origins": ["http://shop.example"]})).json()
        assert await owner.fetchval("SELECT secret_key_id FROM webhooks") == "old"

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AICO_", "RAY_"))}
        env.update(AICO_HOME=str(tmp_path / "home"), AICO_DATABASE_URL=dsn,
                   AICO_SECRET_KEY=f"new:{new},old:{old}")
        done = await asyncio.to_thread(
            subprocess.run, [str(Path(sys.executable).parent / "aico"), "secrets", "rotate"],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert "re-encrypted 1 webhook signing secret(s), 1 widget identity secret(s)" \
            in done.stdout
        assert await owner.fetchval("SELECT secret_key_id FROM webhooks") == "new"
        assert await owner.fetchval("SELECT identity_key_id FROM widgets") == "new"

        # Only the new key now: an event is delivered, signed with the secret shown at creation.
        await owner.execute(
            "INSERT INTO webhook_deliveries (org_id, webhook_id, event_type, payload)"
            " VALUES ($1, $2, 'session.started', '{\"type\": \"session.started\"}')",
            org["id"], hook["id"])
        assert await WebhookOutbox(app_pool, after).deliver_due() == 1
        (got,) = receiver.received
        assert Webhook(hook["secret"]).verify(got.body, got.headers)["type"] == "session.started"
        # The old key alone no longer opens it: the old key can go.
        row = await owner.fetchrow("SELECT id AS webhook_id, secret_key_id, secret_nonce,"
                                   " secret_ciphertext FROM webhooks")
        with pytest.raises(SecretKeyError):
            open_signing_secret(before, row, org_id=org["id"])

        # The widget's visitor tokens still verify with the secret shown at creation.
        async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(after, pool=app_pool)),
                base_url="http://aico.test", headers={"Origin": "http://shop.example"}) as site:
            named = await site.post(f"/v1/widget/{widget['public_key']}/sessions", json={
                "visitor_token": sign_visitor(widget["identity_secret"], "u1",
                                              int(time.time()) + 60)})
            assert named.status_code == 201, named.text
    finally:
        receiver.close()
        await app_pool.close()
        await owner.close()
