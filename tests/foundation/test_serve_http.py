"""The API deployed with `serve.run` on a real Ray, reached over real HTTP."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from db.api_clients import insert_api_client, new_token
from db.organizations import insert_organization
from tests.foundation.flow_docs import greeting_flow


@pytest.fixture(scope="module")
def api_on_serve(serve_http: str, settings):
    from ray import serve

    from serve_apps.app import build_api_app

    env = {"AICO_HOME": str(settings.home), "AICO_DATABASE_URL": settings.database_url,
           "AICO_MAX_BODY_BYTES": str(settings.max_body_bytes)}
    serve.run(build_api_app(env_vars=env), name="api-test", route_prefix="/", blocking=False)
    yield serve_http
    serve.delete("api-test")


async def test_flow_lifecycle_over_serve_http(api_on_serve: str, pool):
    org = await insert_organization(pool, slug="serve-http", name="Serve HTTP")
    token = new_token()
    await insert_api_client(pool, org_id=org["id"], name="t", token=token)
    async with httpx.AsyncClient(base_url=api_on_serve, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["database"]["ok"] and health.json()["ray"]["mode"] == "attached"

        created = await http.post("/v1/flows", json={"name": "S", "document": greeting_flow()})
        assert created.status_code == 201, created.text
        flow_id = created.json()["id"]
        published = await http.post(f"/v1/flows/{flow_id}/publish")
        assert published.status_code == 201 and published.json()["version"] == 1
        listed = (await http.get("/v1/flows")).json()["items"]
        assert [f["id"] for f in listed] == [flow_id]

        unauthorized = await http.get("/v1/flows", headers={"Authorization": "Bearer nope"})
        assert unauthorized.status_code == 401 and unauthorized.json()["error"] == "unauthorized"
        too_big = await http.post("/v1/flows", content=b"x" * (300 * 1024),
                                  headers={"content-type": "application/json"})
        assert too_big.status_code == 413


async def test_the_replica_answers_calls_on_its_media_port(api_on_serve: str):
    # A call's frames skip the Serve proxy: the replica listens on a port of its own, serving
    # the same app (serve_apps/media_port.py); voice URLs name it.
    async with httpx.AsyncClient(base_url=api_on_serve, timeout=30) as http:
        media_port = (await http.get("/healthz")).json()["media_port"]
    assert isinstance(media_port, int) and f":{media_port}" not in api_on_serve
    direct = f"http://127.0.0.1:{media_port}"
    async with httpx.AsyncClient(base_url=direct, timeout=30) as http:
        health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["media_port"] == media_port
    url = f"ws://127.0.0.1:{media_port}/v1/sessions/{uuid.uuid4()}/voice?token=forged"
    async with connect(url) as ws:
        refusal = json.loads(await ws.recv())
        await ws.wait_closed()
    assert refusal["type"] == "error" and refusal["code"] == "unauthorized"
    assert ws.close_code == 4401
