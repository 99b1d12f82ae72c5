"""No organization can see or touch another's objects: their ids answer 404, never 403."""

from __future__ import annotations

import uuid

from tests.foundation.flow_docs import greeting_flow
from tests.foundation.sessions_arrange import insert_session_row


async def test_another_orgs_flow_is_invisible_and_untouchable(make_org, pool):
    alice, bob = await make_org(), await make_org()
    r = await alice.client.post("/v1/flows", json={"name": "A", "document": greeting_flow("A")})
    flow_id = r.json()["id"]
    await alice.client.post(f"/v1/flows/{flow_id}/publish")

    for method, path, body in [
        ("GET", f"/v1/flows/{flow_id}", None),
        ("PUT", f"/v1/flows/{flow_id}", {"document": greeting_flow("B"), "draft_revision": 1}),
        ("POST", f"/v1/flows/{flow_id}/publish", None),
        ("GET", f"/v1/flows/{flow_id}/versions", None),
        ("DELETE", f"/v1/flows/{flow_id}", None),
    ]:
        r = await bob.client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["error"] == "not_found"
        # The answer is the same as for an id that exists nowhere.
        missing = path.replace(flow_id, str(uuid.uuid4()))
        assert (await bob.client.request(method, missing, json=body)).status_code == 404

    assert (await bob.client.get("/v1/flows")).json()["items"] == []
    after = (await alice.client.get(f"/v1/flows/{flow_id}")).json()
    assert after["draft_revision"] == 1 and after["latest_version"] == 1
    assert after["document"]["name"] == "A"


async def test_another_orgs_sessions_are_invisible(make_org, pool):
    alice, bob = await make_org(), await make_org()
    r = await alice.client.post("/v1/flows", json={"name": "A", "document": greeting_flow("A")})
    flow_id = r.json()["id"]
    await alice.client.post(f"/v1/flows/{flow_id}/publish")
    session_id = await insert_session_row(pool, org_id=alice.id, flow_id=flow_id)

    assert (await alice.client.get(f"/v1/sessions/{session_id}")).status_code == 200
    assert (await bob.client.get(f"/v1/sessions/{session_id}")).status_code == 404
    assert (await bob.client.get(f"/v1/sessions/{session_id}/events")).status_code == 404
    assert (await bob.client.get("/v1/sessions")).json()["items"] == []
    assert (await bob.client.get(f"/v1/sessions?flow_id={flow_id}")).json()["items"] == []
