async def test_healthz(anon):
    r = await anon.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.json()["database"]["ok"] is True

async def test_create_flow(api):
    doc = {"name": "x", "nodes": [{"id": "start", "type": "start"}], "edges": []}
    r = await api.post("/v1/flows", json={"name": "x", "document": doc})
    assert r.status_code == 201, r.text
