"""Reading sessions: filters, keyset pagination, transcript, events."""

from __future__ import annotations

from tests.foundation.flow_docs import greeting_flow
from tests.foundation.sessions_arrange import insert_session_row


async def published_flow(org) -> str:
    r = await org.client.post("/v1/flows", json={"name": "F", "document": greeting_flow()})
    await org.client.post(f"/v1/flows/{r.json()['id']}/publish")
    return r.json()["id"]


async def test_filters_and_pagination_walk_every_session_once(make_org, pool):
    org = await make_org()
    flow_a, flow_b = await published_flow(org), await published_flow(org)
    ids = set()
    for i in range(7):
        ids.add(str(await insert_session_row(
            pool, org_id=org.id, flow_id=flow_a if i % 2 == 0 else flow_b,
            channel="voice" if i < 3 else "chat", status="ended" if i == 6 else "active")))

    seen, cursor = [], None
    while True:
        url = "/v1/sessions?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await org.client.get(url)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and set(seen) == ids

    by_flow = (await org.client.get(f"/v1/sessions?flow_id={flow_a}")).json()["items"]
    assert len(by_flow) == 4 and {s["flow_id"] for s in by_flow} == {flow_a}
    voice = (await org.client.get("/v1/sessions?channel=voice")).json()["items"]
    assert len(voice) == 3
    ended = (await org.client.get("/v1/sessions?status=ended")).json()["items"]
    assert len(ended) == 1
    future = (await org.client.get("/v1/sessions?since=2100-01-01T00:00:00Z")).json()["items"]
    assert future == []
    bad = await org.client.get("/v1/sessions?status=sleeping")
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "status"
    bad = await org.client.get("/v1/sessions?cursor=garbage")
    assert bad.status_code == 400


async def test_a_session_shows_its_transcript(make_org, pool):
    org = await make_org()
    flow = await published_flow(org)
    sid = await insert_session_row(pool, org_id=org.id, flow_id=flow, turns=[
        ("assistant", "Hello there."), ("user", "Hi, I need a table for two.")])
    body = (await org.client.get(f"/v1/sessions/{sid}")).json()
    assert body["flow_version"] == 1
    assert [(t["role"], t["text"]) for t in body["transcript"]] == [
        ("assistant", "Hello there."), ("user", "Hi, I need a table for two.")]
    assert (await org.client.get(f"/v1/sessions/{sid}/events")).json()["items"] == []
