"""Roles through the HTTP API: what a viewer, an editor, an admin and an owner may do, with
API-client tokens and with OIDC tokens whose organization roles come from the identity provider.
A refused request changes nothing, and a viewer never sees the names of the secrets."""

from __future__ import annotations

import secrets as pysecrets
from pathlib import Path

import asyncpg
import httpx

from db.migrate import migration_files

FLOW = {
    "name": "Greeter",
    "nodes": [{"id": "start", "type": "start"}, {"id": "hi", "type": "say", "text": "Hello."},
              {"id": "done", "type": "end"}],
    "edges": [{"from": "start", "to": "hi"}, {"from": "hi", "to": "done"}],
}


def assert_forbidden(response: httpx.Response, needed: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "forbidden"
    assert f"needs the {needed} role" in body["message"]


async def _flow_rows(pool: asyncpg.Pool, org_id) -> tuple[int, int]:
    flows = await pool.fetchval("SELECT count(*) FROM flows WHERE org_id = $1", org_id)
    versions = await pool.fetchval("SELECT count(*) FROM flow_versions WHERE org_id = $1", org_id)
    return flows, versions


async def _viewer_story(viewer: httpx.AsyncClient, admin: httpx.AsyncClient, org_id,
                        pool: asyncpg.Pool) -> None:
    """An admin set the organization up; the viewer reads it and is refused everything else."""
    created = await admin.post("/v1/flows", json={"name": "Greeter", "document": FLOW})
    assert created.status_code == 201, created.text
    flow = created.json()
    assert (await admin.put("/v1/secrets/CRM_API_KEY", json={"value": "s3cr3t-v4lue"})
            ).status_code == 201

    me = await viewer.get("/v1/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "viewer" and me.json()["org_id"] == str(org_id)

    listed = await viewer.get("/v1/flows")
    assert listed.status_code == 200, listed.text
    assert [f["id"] for f in listed.json()["items"]] == [flow["id"]]
    assert (await viewer.get(f"/v1/flows/{flow['id']}")).status_code == 200
    assert (await viewer.get(f"/v1/flows/{flow['id']}/versions")).status_code == 200
    assert (await viewer.get("/v1/sessions")).status_code == 200
    assert (await viewer.get("/v1/providers")).status_code == 200
    assert (await viewer.get("/v1/flows/schema")).status_code == 200
    before = await _flow_rows(pool, org_id)

    assert_forbidden(await viewer.post("/v1/flows", json={"name": "Mine", "document": FLOW}),
                     "editor")
    assert_forbidden(await viewer.put(f"/v1/flows/{flow['id']}", json={
        "name": "Renamed", "document": FLOW, "draft_revision": flow["draft_revision"]}), "editor")
    assert_forbidden(await viewer.post(f"/v1/flows/{flow['id']}/publish"), "admin")
    assert_forbidden(await viewer.delete(f"/v1/flows/{flow['id']}"), "admin")
    assert_forbidden(await viewer.post(f"/v1/flows/{flow['id']}/sessions", json={}), "editor")
    names = await viewer.get("/v1/secrets")
    assert_forbidden(names, "admin")
    assert "CRM_API_KEY" not in names.text
    assert_forbidden(await viewer.put("/v1/secrets/OTHER", json={"value": "x"}), "admin")
    assert_forbidden(await viewer.delete("/v1/secrets/CRM_API_KEY"), "admin")
    assert_forbidden(await viewer.get("/v1/org/providers"), "admin")
    assert_forbidden(await viewer.put("/v1/org/providers", json={}), "admin")

    # Nothing changed: same flows and versions, the draft untouched, both secrets as they were.
    assert await _flow_rows(pool, org_id) == before
    row = await pool.fetchrow("SELECT name, draft_revision, deleted_at FROM flows WHERE id = $1",
                              flow["id"])
    assert (row["name"], row["draft_revision"], row["deleted_at"]) == ("Greeter", 1, None)
    assert await pool.fetchval("SELECT array_agg(name) FROM secrets WHERE org_id = $1",
                               org_id) == ["CRM_API_KEY"]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org_id) == 0


async def test_an_api_client_viewer_reads_but_cannot_edit_publish_or_see_secrets(
    make_org, app, pool
):
    admin = await make_org()
    token = "aico_" + pysecrets.token_urlsafe(24)
    from db.api_clients import insert_api_client

    await insert_api_client(pool, org_id=admin.id, name="dashboard", token=token, role="viewer")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://aico.test",
                                 headers={"Authorization": f"Bearer {token}"}) as viewer:
        await _viewer_story(viewer, admin.client, admin.id, pool)


async def test_an_editor_builds_flows_but_an_admin_publishes_them(make_org, pool):
    org = await make_org(role="editor")
    editor = org.client
    created = await editor.post("/v1/flows", json={"name": "Greeter", "document": FLOW})
    assert created.status_code == 201, created.text
    flow = created.json()
    edited = await editor.put(f"/v1/flows/{flow['id']}", json={
        "name": "Greeter 2", "document": FLOW, "draft_revision": 1})
    assert edited.status_code == 200, edited.text
    assert_forbidden(await editor.post(f"/v1/flows/{flow['id']}/publish"), "admin")
    assert_forbidden(await editor.get("/v1/secrets"), "admin")
    assert_forbidden(await editor.put("/v1/secrets/K", json={"value": "v"}), "admin")
    assert await _flow_rows(pool, org.id) == (1, 0)

    for role in ("admin", "owner"):
        from db.api_clients import insert_api_client

        token = "aico_" + pysecrets.token_urlsafe(24)
        await insert_api_client(pool, org_id=org.id, name=role, token=token, role=role)
        published = await editor.post(f"/v1/flows/{flow['id']}/publish",
                                      headers={"Authorization": f"Bearer {token}"})
        assert published.status_code == 201, published.text
    assert await _flow_rows(pool, org.id) == (1, 2)


async def test_an_oidc_viewer_reads_but_cannot_edit_publish_or_see_secrets(
    oidc_provider, oidc_api, make_idp_org, pool
):
    org = await make_idp_org()
    admin = await oidc_api(token=await oidc_provider.token(organization_id=org.external_id,
                                                           roles=("admin",)))
    # Logto may list several roles; the highest of ours wins, unknown names are ignored.
    viewer = await oidc_api(token=await oidc_provider.token(
        organization_id=org.external_id, roles=("viewer", "billing-contact")))
    await _viewer_story(viewer, admin, org.id, pool)


async def test_oidc_roles_are_read_for_the_tokens_organization_only(
    oidc_provider, oidc_api, make_idp_org, pool
):
    org, other = await make_idp_org(), await make_idp_org()
    # Admin elsewhere, nothing here: no access here, and no default role.
    token = await oidc_provider.token(organization_id=org.external_id,
                                      raw_roles=[f"{other.external_id}:admin"])
    api = await oidc_api(token=token)
    refused = await api.get("/v1/flows")
    assert refused.status_code == 403, refused.text
    assert "holds no role in its organization" in refused.json()["message"]
    assert token not in refused.text
    assert (await api.post("/v1/flows", json={"name": "x", "document": FLOW})).status_code == 403
    assert await _flow_rows(pool, org.id) == (0, 0)

    # The same for a token with no role claim at all.
    bare = await oidc_api(token=await oidc_provider.token(organization_id=org.external_id,
                                                          roles=()))
    assert (await bare.get("/v1/flows")).status_code == 403

    # An explicit membership row grants its role when the token names none.
    await pool.execute("INSERT INTO members (org_id, subject, role) VALUES ($1, $2, 'editor')",
                       org.id, "aico-m2m")
    try:
        created = await bare.post("/v1/flows", json={"name": "x", "document": FLOW})
        assert created.status_code == 201, created.text
        assert_forbidden(await bare.post(f"/v1/flows/{created.json()['id']}/publish"), "admin")
    finally:
        await pool.execute("DELETE FROM members WHERE org_id = $1", org.id)


async def test_the_roles_claim_name_is_configurable(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    token = await oidc_provider.token(organization_id=org.external_id, roles=("admin",))
    # Read from another claim, the provider's organization_roles is ignored: no role.
    api = await oidc_api(token=token, oidc_roles_claim="urn:example:roles")
    assert (await api.get("/v1/flows")).status_code == 403


async def test_existing_api_clients_are_migrated_to_roles(pg_dsn: str, aico_home: Path):
    name = "roles_" + pysecrets.token_hex(4)
    admin_conn = await asyncpg.connect(pg_dsn)
    try:
        await admin_conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin_conn.close()
    conn = await asyncpg.connect(pg_dsn.replace("/postgres?", f"/{name}?"))
    try:
        files = dict(migration_files())
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(files["0001_init.sql"])
        org = await conn.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ('demo', 'Demo') RETURNING id")
        await conn.executemany(
            "INSERT INTO api_clients (org_id, name, token_hash, role) VALUES ($1, $2, $3, $4)",
            [(org, "dev-token", "h1", "admin"), (org, "ci", "h2", "admin"),
             (org, "bot", "h3", "member")])
        await conn.execute("INSERT INTO members (org_id, subject, role) VALUES ($1, 'u', 'member')",
                           org)
        await conn.execute(files["0010_roles.sql"])
        roles = {r["name"]: r["role"] for r in await conn.fetch("SELECT name, role FROM api_clients")}
        assert roles == {"dev-token": "owner", "ci": "admin", "bot": "editor"}
        assert await conn.fetchval("SELECT role FROM members") == "editor"
        try:
            await conn.execute("UPDATE api_clients SET role = 'member'")
        except asyncpg.CheckViolationError:
            pass
        else:
            raise AssertionError("the old 'member' role is still accepted")
    finally:
        await conn.close()


async def test_an_organization_tokens_scope_carries_its_role_as_logto_grants_it(
    oidc_provider, oidc_api, make_idp_org, pool
):
    """Logto puts an organization role's API permissions in an organization token's scope:
    `aico:editor` there is the editor role, with no role claim at all."""
    org = await make_idp_org()
    token = await oidc_provider.token(organization_id=org.external_id, roles=(),
                                      scope="flows:read aico:editor")
    api = await oidc_api(token=token)
    me = await api.get("/v1/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "editor"
    created = await api.post("/v1/flows", json={"name": "x", "document": FLOW})
    assert created.status_code == 201, created.text
    assert_forbidden(await api.post(f"/v1/flows/{created.json()['id']}/publish"), "admin")

    # Other permissions alone grant nothing; with the prefix turned off neither does aico:editor.
    plain = await oidc_api(token=await oidc_provider.token(
        organization_id=org.external_id, roles=(), scope="flows:read flows:write"))
    assert (await plain.get("/v1/flows")).status_code == 403
    off = await oidc_api(token=token, oidc_role_scope_prefix="")
    assert (await off.get("/v1/flows")).status_code == 403
    assert await _flow_rows(pool, org.id) == (1, 0)
