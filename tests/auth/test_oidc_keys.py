"""The issuer's signing keys: fetched once and cached, fetched again when the issuer rotates them
(a token names a kid we have not seen), but not on every made-up kid; an unreachable issuer is a
clear 401. The provider counts its own discovery and JWKS requests, so the tests read what the
API really fetched."""

from __future__ import annotations

import socket

from joserfc import jwt
from joserfc.jwk import ECKey


async def test_keys_are_fetched_once_and_cached(start_oidc_provider, oidc_api, make_idp_org):
    provider = start_oidc_provider()
    org = await make_idp_org()
    api = await oidc_api(token=await provider.token(organization_id=org.external_id),
                         oidc_issuer=provider.issuer)
    before = await provider.stats()
    for _ in range(3):
        assert (await api.get("/v1/flows")).status_code == 200
    after = await provider.stats()
    assert after["discovery_requests"] - before["discovery_requests"] == 1
    assert after["jwks_requests"] - before["jwks_requests"] == 1


async def test_keys_are_fetched_again_when_the_cache_expires(
    start_oidc_provider, oidc_api, make_idp_org
):
    provider = start_oidc_provider()
    org = await make_idp_org()
    api = await oidc_api(token=await provider.token(organization_id=org.external_id),
                         oidc_issuer=provider.issuer, oidc_jwks_cache_s=0)
    before = await provider.stats()
    for _ in range(3):
        assert (await api.get("/v1/flows")).status_code == 200
    after = await provider.stats()
    assert after["jwks_requests"] - before["jwks_requests"] == 3
    assert after["discovery_requests"] - before["discovery_requests"] == 1  # jwks_uri is kept


async def test_key_rotation_is_picked_up_with_one_refetch(
    start_oidc_provider, oidc_api, make_idp_org
):
    provider = start_oidc_provider()
    org = await make_idp_org()
    old_token = await provider.token(organization_id=org.external_id)
    api = await oidc_api(oidc_issuer=provider.issuer)  # default one-hour key cache
    jwks_before = (await provider.stats())["jwks_requests"]

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert (await api.get("/v1/flows", headers=bearer(old_token))).status_code == 200
    assert (await provider.stats())["jwks_requests"] == jwks_before + 1

    rotated = await provider.rotate_keys()
    new_token = await provider.token(organization_id=org.external_id)
    response = await api.get("/v1/flows", headers=bearer(new_token))
    assert response.status_code == 200, response.text
    stats = await provider.stats()
    assert stats["kids"] == [rotated["kid"]]
    assert stats["jwks_requests"] == jwks_before + 2

    # The retired key is gone from the JWKS: its tokens no longer open anything.
    response = await api.get("/v1/flows", headers=bearer(old_token))
    assert response.status_code == 401
    assert "does not publish" in response.json()["message"]

    # A flood of made-up kids right after does not send the API back to the issuer.
    stranger = ECKey.generate_key("P-384")
    claims = provider.claims_now(organization_id=org.external_id)
    for n in range(5):
        forged = jwt.encode({"alg": "ES384", "kid": f"made-up-{n}"}, claims, stranger,
                            algorithms=["ES384"])
        response = await api.get("/v1/flows", headers=bearer(forged))
        assert response.status_code == 401
        assert "does not publish" in response.json()["message"]
    assert (await provider.stats())["jwks_requests"] == jwks_before + 2
    # ... and the current key keeps working.
    assert (await api.get("/v1/flows", headers=bearer(new_token))).status_code == 200


async def test_unreachable_issuer_is_a_clear_401(oidc_api, make_idp_org, caplog):
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    issuer = f"http://127.0.0.1:{closed_port}"
    org = await make_idp_org()
    token = jwt.encode(
        {"alg": "ES384", "kid": "k1"},
        {"iss": issuer, "aud": "https://api.aico.test", "exp": 4_000_000_000,
         "organization_id": org.external_id},
        ECKey.generate_key("P-384"), algorithms=["ES384"],
    )
    api = await oidc_api(token=token, oidc_issuer=issuer)
    response = await api.get("/v1/flows")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthorized"
    assert body["message"] == "cannot reach identity provider"
    assert "ConnectError" in body["details"]["reason"]
    assert token not in response.text
    assert "cannot reach identity provider" in caplog.text
    assert token.rsplit(".", 1)[-1] not in caplog.text

    # The API-client token of the same organization still works while the issuer is down.
    response = await api.get(
        "/v1/flows", headers={"Authorization": f"Bearer {org.api_token}"}
    )
    assert response.status_code == 200, response.text


async def test_issuer_that_disagrees_with_its_discovery_document_is_refused(
    start_oidc_provider, oidc_api, make_idp_org
):
    provider = start_oidc_provider()
    org = await make_idp_org()
    token = await provider.token(organization_id=org.external_id)
    # Same server, but configured with a trailing slash its discovery document does not use.
    api = await oidc_api(token=token, oidc_issuer=provider.issuer + "/")
    response = await api.get("/v1/flows")
    assert response.status_code == 401
    body = response.json()
    assert body["message"] == "cannot reach identity provider"
    assert "discovery document names issuer" in body["details"]["reason"]
