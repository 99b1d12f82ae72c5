"""API clients through the HTTP API: an admin mints a token with a role (shown once, stored as a
hash), lists and revokes it; nobody mints or revokes above their own role; a revoked token opens
nothing."""

from __future__ import annotations

import httpx

from db.api_clients import hash_token


def _client(app, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aico.test",
                             headers={"Authorization": f"Bearer {token}"})


async def test_an_admin_mints_lists_and_revokes_tokens_with_roles(make_org, app, pool):
    org = await make_org()  # an admin token
    admin = org.client
    made = await admin.post("/v1/org/api-clients", json={"name": "crm", "role": "viewer"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "crm" and body["role"] == "viewer" and body["token"].startswith("aico_")
    stored = await pool.fetchrow("SELECT org_id, token_hash, role FROM api_clients WHERE id = $1",
                                 body["id"])
    assert (stored["org_id"], stored["role"]) == (org.id, "viewer")
    assert stored["token_hash"] == hash_token(body["token"]) != body["token"]

    listed = (await admin.get("/v1/org/api-clients")).json()["items"]
    crm = next(i for i in listed if i["id"] == body["id"])
    assert set(crm) == {"id", "name", "role", "created_at"}  # never the token or its hash
    assert body["token"] not in (await admin.get("/v1/org/api-clients")).text

    async with _client(app, body["token"]) as crm_api:
        assert (await crm_api.get("/v1/flows")).status_code == 200
        assert (await crm_api.post("/v1/org/api-clients",
                                   json={"name": "x", "role": "viewer"})).status_code == 403
        assert (await admin.delete(f"/v1/org/api-clients/{body['id']}")).status_code == 204
        refused = await crm_api.get("/v1/flows")
        assert refused.status_code == 401 and refused.json()["message"] == "invalid or revoked token"
    assert (await admin.delete(f"/v1/org/api-clients/{body['id']}")).status_code == 404


async def test_nobody_mints_or_revokes_above_their_own_role(make_org, app, pool):
    org = await make_org()  # admin
    before = await pool.fetchval("SELECT count(*) FROM api_clients WHERE org_id = $1", org.id)
    refused = await org.client.post("/v1/org/api-clients", json={"name": "o", "role": "owner"})
    assert refused.status_code == 403 and "owner" in refused.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM api_clients WHERE org_id = $1",
                               org.id) == before

    from db.api_clients import insert_api_client, new_token

    owner_token = new_token()
    owner_id = await insert_api_client(pool, org_id=org.id, name="owner", token=owner_token,
                                       role="owner")
    assert (await org.client.delete(f"/v1/org/api-clients/{owner_id}")).status_code == 403
    async with _client(app, owner_token) as owner:
        made = await owner.post("/v1/org/api-clients", json={"name": "o2", "role": "owner"})
        assert made.status_code == 201, made.text

    # Bad input is named; another organization's client is not found.
    bad = await org.client.post("/v1/org/api-clients", json={"name": "m", "role": "member"})
    assert bad.status_code == 422 and "role" in bad.json()["message"]
    other = await make_org()
    assert (await other.client.delete(f"/v1/org/api-clients/{owner_id}")).status_code == 404
    editor = await make_org(role="editor")
    assert (await editor.client.get("/v1/org/api-clients")).status_code == 403
