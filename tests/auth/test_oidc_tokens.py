"""OIDC access tokens through the API: what opens an organization's flows and what is a 401.

Tokens come from a real OIDC provider on loopback (node oidc-provider, what Logto is built on)
via its token endpoint; the few a provider never issues (expired, another issuer, alg=none,
a key it does not publish) are signed here or by the provider's key on request.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

FLOW = {"name": "Greeting", "nodes": [{"id": "start", "type": "start"}], "edges": []}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_refused(response, token: str, *fragments: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "unauthorized"
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    assert token not in response.text
    signature = token.rsplit(".", 1)[-1]
    if signature:
        assert signature not in response.text


async def test_es384_token_from_the_provider_opens_its_organization(
    oidc_provider, oidc_api, make_idp_org, pool
):
    org = await make_idp_org()
    token = await oidc_provider.token(organization_id=org.external_id)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES384"

    api = await oidc_api(token=token)
    created = await api.post("/v1/flows", json={"name": "Greeting", "document": FLOW})
    assert created.status_code == 201, created.text
    listed = await api.get("/v1/flows")
    assert listed.status_code == 200, listed.text
    assert [f["id"] for f in listed.json()["items"]] == [created.json()["id"]]

    # The flow landed in the organization named by the token's organization_id claim.
    stored_org = await pool.fetchval(
        "SELECT org_id FROM flows WHERE id = $1", created.json()["id"]
    )
    assert stored_org == org.id


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_es256_and_rs256_tokens_are_accepted_too(
    alg, start_oidc_provider, oidc_api, make_idp_org
):
    provider = start_oidc_provider(alg=alg)
    org = await make_idp_org()
    token = await provider.token(organization_id=org.external_id)
    api = await oidc_api(token=token, oidc_issuer=provider.issuer)
    response = await api.get("/v1/flows")
    assert response.status_code == 200, response.text


async def test_token_for_another_api_is_refused(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    token = await oidc_provider.token(
        organization_id=org.external_id, resource=oidc_provider.other_audience
    )
    api = await oidc_api(token=token)
    assert_refused(await api.get("/v1/flows"), token, "audience")


async def test_token_with_audience_list_including_this_api_is_accepted(
    oidc_provider, oidc_api, make_idp_org
):
    org = await make_idp_org()
    token = await oidc_provider.sign(oidc_provider.claims_now(
        aud=[oidc_provider.other_audience, oidc_provider.audience],
        organization_id=org.external_id,
    ))
    api = await oidc_api(token=token)
    assert (await api.get("/v1/flows")).status_code == 200

    other_only = await oidc_provider.sign(oidc_provider.claims_now(
        aud=[oidc_provider.other_audience], organization_id=org.external_id,
    ))
    api = await oidc_api(token=other_only)
    assert_refused(await api.get("/v1/flows"), other_only, "audience")


async def test_expired_token_is_refused(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    now = int(time.time())
    token = await oidc_provider.sign(oidc_provider.claims_now(
        iat=now - 7200, exp=now - 3600, organization_id=org.external_id
    ))
    api = await oidc_api(token=token)
    assert_refused(await api.get("/v1/flows"), token, "expired")


async def test_token_not_valid_yet_is_refused(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    now = int(time.time())
    token = await oidc_provider.sign(oidc_provider.claims_now(
        nbf=now + 3600, exp=now + 7200, organization_id=org.external_id
    ))
    api = await oidc_api(token=token)
    assert_refused(await api.get("/v1/flows"), token, "not valid yet")


async def test_token_without_expiry_is_refused(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    claims = oidc_provider.claims_now(organization_id=org.external_id)
    del claims["exp"]
    token = await oidc_provider.sign(claims)
    api = await oidc_api(token=token)
    assert_refused(await api.get("/v1/flows"), token, "exp")


async def test_token_naming_another_issuer_is_refused(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    token = await oidc_provider.sign(oidc_provider.claims_now(
        iss="https://evil.example", organization_id=org.external_id
    ))
    api = await oidc_api(token=token)
    assert_refused(await api.get("/v1/flows"), token, "issuer")


async def test_token_signed_with_a_key_the_issuer_does_not_publish_is_refused(
    oidc_provider, oidc_api, make_idp_org
):
    org = await make_idp_org()
    claims = oidc_provider.claims_now(organization_id=org.external_id)
    stranger = ECKey.generate_key("P-384", parameters={"kid": "not-published"})
    token = jwt.encode({"alg": "ES384", "kid": "not-published"}, claims, stranger,
                       algorithms=["ES384"])
    api = await oidc_api(token=token)
    assert_refused(await api.get("/v1/flows"), token, "does not publish")

    # A stranger's key claiming the provider's own kid fails on the signature.
    kid = (await oidc_provider.stats())["kids"][0]
    forged = jwt.encode({"alg": "ES384", "kid": kid}, claims, stranger, algorithms=["ES384"])
    response = await api.get("/v1/flows", headers={"Authorization": f"Bearer {forged}"})
    assert_refused(response, forged, "signature")


async def test_alg_none_and_hmac_tokens_are_refused(oidc_provider, oidc_api, make_idp_org):
    org = await make_idp_org()
    claims = oidc_provider.claims_now(organization_id=org.external_id)
    kid = (await oidc_provider.stats())["kids"][0]
    api = await oidc_api()

    unsigned = f"{_b64({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{_b64(claims)}."
    response = await api.get("/v1/flows", headers={"Authorization": f"Bearer {unsigned}"})
    assert_refused(response, unsigned, "'none' is not accepted")

    # HS256 keyed with the issuer's public key: the classic algorithm-confusion forgery.
    async with httpx.AsyncClient() as http:
        jwks = (await http.get(f"{oidc_provider.issuer}/jwks")).json()
    public_jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    hmac = jwt.encode({"alg": "HS256", "kid": kid}, claims,
                      OctKey.import_key(json.dumps(public_jwk).encode()), algorithms=["HS256"])
    response = await api.get("/v1/flows", headers={"Authorization": f"Bearer {hmac}"})
    assert_refused(response, hmac, "'HS256' is not accepted")


async def test_algorithm_outside_the_configured_list_is_refused(
    oidc_provider, oidc_api, make_idp_org
):
    org = await make_idp_org()
    token = await oidc_provider.token(organization_id=org.external_id)
    api = await oidc_api(token=token, oidc_algorithms=["RS256"])
    assert_refused(await api.get("/v1/flows"), token, "'ES384' is not accepted")


async def test_rsa_key_cannot_verify_a_token_claiming_an_ec_algorithm(
    start_oidc_provider, oidc_api, make_idp_org
):
    provider = start_oidc_provider(alg="RS256")
    org = await make_idp_org()
    kid = (await provider.stats())["kids"][0]
    stranger = ECKey.generate_key("P-384")
    token = jwt.encode({"alg": "ES384", "kid": kid},
                       provider.claims_now(organization_id=org.external_id), stranger,
                       algorithms=["ES384"])
    api = await oidc_api(token=token, oidc_issuer=provider.issuer)
    assert_refused(await api.get("/v1/flows"), token, "not an ES384 key")


async def test_token_without_organization_or_with_unknown_one_is_refused(
    oidc_provider, oidc_api
):
    no_org = await oidc_provider.token(organization_id=None)
    api = await oidc_api(token=no_org)
    assert_refused(await api.get("/v1/flows"), no_org, "organization_id")

    unknown = await oidc_provider.token(organization_id="logto-org-nobody")
    api = await oidc_api(token=unknown)
    assert_refused(await api.get("/v1/flows"), unknown, "organization is not known")


async def test_malformed_jwt_is_refused_without_echoing_it(oidc_api):
    api = await oidc_api()
    for token in (
        "not-base64!.payload.signature-xyz",
        f"{_b64(['not', 'an', 'object'])}.e30.signature-xyz",
    ):
        response = await api.get("/v1/flows", headers={"Authorization": f"Bearer {token}"})
        assert_refused(response, token, "malformed token")


async def test_refusals_never_log_the_token(oidc_provider, oidc_api, make_idp_org, caplog):
    caplog.set_level(logging.DEBUG)
    org = await make_idp_org()
    wrong_audience = await oidc_provider.token(
        organization_id=org.external_id, resource=oidc_provider.other_audience
    )
    now = int(time.time())
    expired = await oidc_provider.sign(oidc_provider.claims_now(
        exp=now - 3600, organization_id=org.external_id
    ))
    api = await oidc_api()
    for token in (wrong_audience, expired):
        response = await api.get("/v1/flows", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert token.rsplit(".", 1)[-1] not in caplog.text
    assert "OIDC: refused a bearer token" in caplog.text


def test_symmetric_algorithms_cannot_be_configured(aico_home):
    from aico.settings import Settings
    from serve_apps.oidc import OidcVerifier

    settings = Settings(home=aico_home, oidc_issuer="https://id.example",
                        oidc_audience="https://api.example", oidc_algorithms=["ES384", "HS256"])
    with pytest.raises(ValueError, match="refusing \\['HS256'\\]"):
        OidcVerifier.from_settings(settings)
