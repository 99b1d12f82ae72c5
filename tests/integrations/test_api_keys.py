"""API keys for machines (`/v1/api-keys`): an admin mints a key with a role and scopes (shown
once, stored hashed); the key does what its scopes allow and gets 403 elsewhere; a revoked key
is 401 at once, and so is a key past its `expires_at`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from integration_flows import publish_echo

from db.api_clients import hash_token


def _client(app, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aico.test",
                             headers={"Authorization": f"Bearer {token}"}, timeout=60)


async def test_a_scoped_key_starts_sessions_but_cannot_touch_flows(make_org, app, pool):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    made = await org.client.post("/v1/api-keys", json={
        "name": "crm trigger", "role": "editor", "scopes": ["sessions:write", "sessions:read"]})
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("aico_") and key["scopes"] == ["sessions:read", "sessions:write"]
    stored = await pool.fetchrow(
        "SELECT org_id, token_hash, role, scopes FROM api_clients WHERE id = $1", key["id"])
    assert stored["org_id"] == org.id and stored["role"] == "editor"
    assert stored["token_hash"] == hash_token(key["key"])
    assert stored["scopes"] == ["sessions:read", "sessions:write"]
    listed = (await org.client.get("/v1/api-keys")).json()["items"]
    assert key["key"] not in str(listed)
    assert next(i for i in listed if i["id"] == key["id"])["scopes"] == key["scopes"]

    async with _client(app, key["key"]) as crm:
        started = await crm.post(f"/v1/flows/{flow_id}/sessions", json={})
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]
        reply = await crm.post(f"/v1/sessions/{session_id}/messages", json={"text": "hi"})
        assert reply.status_code == 200 and reply.json()["messages"][0]["text"] == "You said hi"
        assert (await crm.get(f"/v1/sessions/{session_id}")).status_code == 200

        flows_before = await pool.fetchval("SELECT count(*) FROM flows WHERE org_id = $1", org.id)
        for method, path, body in (("GET", "/v1/flows", None),
                                   ("POST", "/v1/flows", {"name": "x", "document": {}}),
                                   ("GET", "/v1/secrets", None)):
            refused = await crm.request(method, path, json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["details"]["required_scope"].split(":")[0] in path
        assert await pool.fetchval("SELECT count(*) FROM flows WHERE org_id = $1",
                                   org.id) == flows_before
        # Its role (editor) still bounds it: no scope lifts a key above its role.
        assert (await crm.get("/v1/api-keys")).status_code == 403


async def test_a_revoked_or_expired_key_is_401(make_org, app, pool):
    org = await make_org()
    made = (await org.client.post("/v1/api-keys", json={
        "name": "reader", "role": "viewer", "scopes": ["flows:read"]})).json()
    async with _client(app, made["key"]) as reader:
        assert (await reader.get("/v1/flows")).status_code == 200
        assert (await org.client.delete(f"/v1/api-keys/{made['id']}")).status_code == 204
        refused = await reader.get("/v1/flows")
        assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert await pool.fetchval("SELECT revoked_at IS NOT NULL FROM api_clients WHERE id = $1",
                               made["id"])

    soon = datetime.now(UTC) + timedelta(hours=1)
    short = (await org.client.post("/v1/api-keys", json={
        "name": "short", "role": "viewer", "expires_at": soon.isoformat()})).json()
    assert datetime.fromisoformat(short["expires_at"]) == soon
    async with _client(app, short["key"]) as temp:
        assert (await temp.get("/v1/flows")).status_code == 200
        # Its hour passes (moved in the database rather than waited for).
        await pool.execute("UPDATE api_clients SET expires_at = now() - interval '1 second'"
                           " WHERE id = $1", short["id"])
        expired = await temp.get("/v1/flows")
        assert expired.status_code == 401 and "expired" in expired.json()["message"]


async def test_bad_scopes_and_past_expiry_are_refused_naming_the_field(make_org, pool):
    org = await make_org()
    before = await pool.fetchval("SELECT count(*) FROM api_clients WHERE org_id = $1", org.id)
    bad = await org.client.post("/v1/api-keys", json={
        "name": "x", "role": "viewer", "scopes": ["sessions:write", "everything"]})
    assert bad.status_code == 422 and "everything" in bad.json()["message"]
    assert "scopes" in bad.json()["message"]
    past = await org.client.post("/v1/api-keys", json={
        "name": "x", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and "expires_at" in past.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM api_clients WHERE org_id = $1",
                               org.id) == before


async def test_a_scoped_admin_key_mints_keys_only_within_its_scopes(make_org, app, pool):
    org = await make_org()
    made = (await org.client.post("/v1/api-keys", json={
        "name": "provisioner", "role": "admin",
        "scopes": ["api_keys:write", "api_keys:read", "sessions:write"]})).json()
    async with _client(app, made["key"]) as provisioner:
        narrow = await provisioner.post("/v1/api-keys", json={
            "name": "trigger", "role": "editor", "scopes": ["sessions:write"]})
        assert narrow.status_code == 201, narrow.text
        for scopes in (["flows:write"], None):
            wide = await provisioner.post("/v1/api-keys", json={
                "name": "wide", "role": "editor", "scopes": scopes})
            assert wide.status_code == 422 and "scopes" in wide.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM api_clients WHERE org_id = $1"
                               " AND name = 'wide'", org.id) == 0
