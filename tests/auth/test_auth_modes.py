"""The two ways in: API-client tokens (the dev token is one) always, OIDC tokens when an issuer is
configured; what a caller without a token sees; and what `/v1/auth/config` tells the dashboard."""

from __future__ import annotations


async def test_missing_or_malformed_authorization_is_401_in_the_error_shape(oidc_api, anon):
    for api in (await oidc_api(), anon):  # with and without OIDC configured
        response = await api.get("/v1/flows")
        assert response.status_code == 401
        body = response.json()
        assert body["error"] == "unauthorized"
        assert "missing Authorization header" in body["message"]
        assert set(body) >= {"error", "message", "details"}

        response = await api.get("/v1/flows", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"

        response = await api.get("/v1/flows", headers={"Authorization": "Bearer nonsense"})
        assert response.status_code == 401
        assert response.json()["message"] == "invalid or revoked token"


async def test_api_client_token_works_alongside_oidc(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    api = await oidc_api(token=org.api_token)
    created = await api.post("/v1/flows", json={
        "name": "Made by an integration",
        "document": {"name": "x", "nodes": [{"id": "start", "type": "start"}], "edges": []},
    })
    assert created.status_code == 201, created.text

    # The same organization signed in through the identity provider sees the same flow.
    oidc = await oidc_api(token=await oidc_provider.token(organization_id=org.external_id))
    listed = await oidc.get("/v1/flows")
    assert listed.status_code == 200, listed.text
    assert [f["id"] for f in listed.json()["items"]] == [created.json()["id"]]


async def test_without_oidc_configured_a_jwt_is_refused(oidc_provider, anon, make_idp_org):
    org = await make_idp_org()
    token = await oidc_provider.token(organization_id=org.external_id)
    response = await anon.get("/v1/flows", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "need OIDC configured" in response.json()["message"]
    assert token not in response.text


async def test_auth_config_reports_the_mode(oidc_provider, oidc_api, anon):
    oidc = await oidc_api(oidc_dashboard_client_id="aico-dashboard")
    response = await oidc.get("/v1/auth/config")
    assert response.status_code == 200
    assert response.json() == {
        "mode": "oidc", "issuer": oidc_provider.issuer, "audience": oidc_provider.audience,
        "client_id": "aico-dashboard",
    }

    response = await anon.get("/v1/auth/config")
    assert response.status_code == 200
    assert response.json() == {"mode": "dev"}
