"""Flows through the HTTP API: create, edit the draft, publish immutable versions, errors."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.foundation.flow_docs import greeting_flow


async def create_flow(api, name: str = "Greeter") -> dict:
    r = await api.post("/v1/flows", json={"name": name, "document": greeting_flow(name)})
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_list_and_delete_a_flow(api):
    flow = await create_flow(api, "Front desk")
    assert flow["draft_revision"] == 1 and flow["latest_version"] == 0

    got = await api.get(f"/v1/flows/{flow['id']}")
    assert got.status_code == 200
    assert got.json()["document"]["nodes"][1]["text"] == "Hello there."

    listed = (await api.get("/v1/flows")).json()["items"]
    assert [f["id"] for f in listed] == [flow["id"]]

    assert (await api.delete(f"/v1/flows/{flow['id']}")).status_code == 204
    assert (await api.get(f"/v1/flows/{flow['id']}")).status_code == 404
    assert (await api.get("/v1/flows")).json()["items"] == []


async def test_publish_makes_numbered_immutable_versions(api, pool: asyncpg.Pool):
    flow = await create_flow(api)
    v1 = await api.post(f"/v1/flows/{flow['id']}/publish")
    assert v1.status_code == 201 and v1.json()["version"] == 1

    edited = greeting_flow(text="Welcome back.")
    r = await api.put(f"/v1/flows/{flow['id']}", json={"document": edited, "draft_revision": 1})
    assert r.status_code == 200 and r.json()["draft_revision"] == 2
    v2 = await api.post(f"/v1/flows/{flow['id']}/publish")
    assert v2.json()["version"] == 2

    versions = (await api.get(f"/v1/flows/{flow['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["document"]["nodes"][1]["text"] == "Hello there."
    assert versions[0]["document"]["nodes"][1]["text"] == "Welcome back."

    # The database itself refuses to change a published version.
    with pytest.raises(asyncpg.RaiseError, match="immutable"):
        await pool.execute(
            "UPDATE flow_versions SET document = '{}'::jsonb WHERE id = $1", v1.json()["id"]
        )


async def test_concurrent_puts_with_the_same_revision_lose_no_update(api):
    flow = await create_flow(api)
    texts = [f"Edit number {i}." for i in range(8)]
    responses = await asyncio.gather(*(
        api.put(f"/v1/flows/{flow['id']}",
                json={"document": greeting_flow(text=t), "draft_revision": 1})
        for t in texts
    ))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7, codes
    winner = next(r.json() for r in responses if r.status_code == 200)
    conflict = next(r.json() for r in responses if r.status_code == 409)
    assert conflict["error"] == "conflict" and conflict["details"]["current_revision"] == 2

    stored = (await api.get(f"/v1/flows/{flow['id']}")).json()
    assert stored["draft_revision"] == 2
    assert stored["document"] == winner["document"]

    # A stale revision stays stale: the loser must reload first.
    stale = await api.put(f"/v1/flows/{flow['id']}",
                          json={"document": greeting_flow(text="late"), "draft_revision": 1})
    assert stale.status_code == 409


async def test_malformed_json_is_400_naming_the_problem(api):
    r = await api.post("/v1/flows", content=b'{"name": "x", "document": {', headers={
        "content-type": "application/json"})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "malformed_json" and "JSON" in body["message"]
    assert set(body) >= {"error", "message", "details"}


async def test_validation_errors_name_the_field(api):
    r = await api.post("/v1/flows", json={"name": "", "document": greeting_flow()})
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "name"

    r = await api.put("/v1/flows/8afccad8-44f0-450a-830e-64a8cf85a21d",
                      json={"document": greeting_flow()})
    assert r.status_code == 422
    assert any(d["field"] == "draft_revision" for d in r.json()["details"])

    r = await api.get("/v1/flows/not-a-uuid")
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "flow_id"


async def test_oversized_body_is_413_before_parsing(api, settings, pool):
    before = await pool.fetchval("SELECT count(*) FROM flows")
    big = {"name": "big", "document": greeting_flow(text="x" * (settings.max_body_bytes + 10))}
    r = await api.post("/v1/flows", json=big)
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"
    assert await pool.fetchval("SELECT count(*) FROM flows") == before

    # Chunked bodies without a Content-Length are counted as they arrive.
    async def chunks():
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    r = await api.post("/v1/flows", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_unknown_route_and_missing_token_use_the_error_shape(api, anon):
    r = await api.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await anon.get("/v1/flows")
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = await anon.get("/v1/flows", headers={"Authorization": "Bearer aico_not-a-real-token"})
    assert r.status_code == 401


async def test_openapi_is_served(anon):
    r = await anon.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/v1/flows/{flow_id}/publish" in paths and "/v1/sessions" in paths
