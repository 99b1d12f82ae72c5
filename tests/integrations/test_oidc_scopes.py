"""A Logto machine-to-machine app's client-credentials token is an API key too: its
`aico:<resource>:<action>` permissions narrow it exactly as a key's scopes do."""

from __future__ import annotations

from integration_flows import publish_echo


async def test_an_oidc_token_with_aico_scopes_is_held_to_them(
        oidc_provider, oidc_api, make_idp_org, pool):
    org = await make_idp_org()
    admin = await oidc_api(token=org.api_token)
    flow_id = await publish_echo(admin)
    token = await oidc_provider.token(organization_id=org.external_id, roles=(),
                                      scope="aico:editor aico:sessions:write")
    machine = await oidc_api(token=token)
    started = await machine.post(f"/v1/flows/{flow_id}/sessions", json={})
    assert started.status_code == 201, started.text
    refused = await machine.get("/v1/flows")
    assert refused.status_code == 403
    assert refused.json()["details"]["required_scope"] == "flows:read"
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1
