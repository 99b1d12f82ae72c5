"""No caller reaches another organization's flows: every read and write of one is a 404 (never a
403 that would confirm it exists), whether the caller holds an API-client token or an OIDC token
from the identity provider."""

from __future__ import annotations

import pytest

FLOW = {"name": "Billing line", "nodes": [{"id": "start", "type": "start"}], "edges": []}


@pytest.fixture(params=["api_client", "oidc"])
async def intruder(request, oidc_provider, oidc_api, make_idp_org):
    """A client for organization B, holding one kind of token or the other."""
    org_b = await make_idp_org()
    if request.param == "api_client":
        token = org_b.api_token
    else:
        token = await oidc_provider.token(organization_id=org_b.external_id)
    return await oidc_api(token=token)


@pytest.fixture
async def victim(oidc_provider, oidc_api, make_idp_org):
    """Organization A, acting through an OIDC token, with one published flow."""
    org_a = await make_idp_org()
    api = await oidc_api(token=await oidc_provider.token(organization_id=org_a.external_id))
    created = await api.post("/v1/flows", json={"name": "Billing line", "document": FLOW})
    assert created.status_code == 201, created.text
    published = await api.post(f"/v1/flows/{created.json()['id']}/publish")
    assert published.status_code == 201, published.text
    return api, created.json()


async def test_another_organizations_flow_is_404_for_every_verb(victim, intruder):
    owner, flow = victim
    flow_id = flow["id"]

    listed = await intruder.get("/v1/flows")
    assert listed.status_code == 200
    assert flow_id not in [f["id"] for f in listed.json()["items"]]

    attempts = [
        intruder.get(f"/v1/flows/{flow_id}"),
        intruder.get(f"/v1/flows/{flow_id}/versions"),
        intruder.put(f"/v1/flows/{flow_id}", json={
            "name": "Hijacked", "document": FLOW, "draft_revision": flow["draft_revision"],
        }),
        intruder.post(f"/v1/flows/{flow_id}/publish"),
        intruder.delete(f"/v1/flows/{flow_id}"),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, (response.request.method, response.text)
        assert response.json()["error"] == "not_found"

    # Nothing changed for the owner: same name, same revision, one version, not deleted.
    response = await owner.get(f"/v1/flows/{flow_id}")
    assert response.status_code == 200
    assert response.json()["name"] == "Billing line"
    assert response.json()["draft_revision"] == flow["draft_revision"]
    versions = await owner.get(f"/v1/flows/{flow_id}/versions")
    assert [v["version"] for v in versions.json()["items"]] == [1]


async def test_a_flow_created_by_one_organization_is_invisible_to_the_other(
    oidc_provider, oidc_api, make_idp_org
):
    org_a, org_b = await make_idp_org(), await make_idp_org()
    a_oidc = await oidc_api(token=await oidc_provider.token(organization_id=org_a.external_id))
    b_oidc = await oidc_api(token=await oidc_provider.token(organization_id=org_b.external_id))
    b_client = await oidc_api(token=org_b.api_token)

    created = await b_client.post("/v1/flows", json={"name": "B's flow", "document": FLOW})
    assert created.status_code == 201, created.text

    assert (await a_oidc.get("/v1/flows")).json()["items"] == []
    assert (await a_oidc.get(f"/v1/flows/{created.json()['id']}")).status_code == 404
    assert [f["id"] for f in (await b_oidc.get("/v1/flows")).json()["items"]] == [
        created.json()["id"]
    ]
