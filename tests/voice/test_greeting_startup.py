"""What `aico up` warms at start: the greeting of every published flow, across organizations,
read with the owner's connection (the application role, with no organization set, reads none);
and which texts are a flow's greeting: the opening `say` texts, up to the first node that
listens, branches, or renders a text per call."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from voice_api import publish_flow

from db.published_flows import list_flow_versions_latest_everywhere
from serve_apps.greetings import opening_says


def flow(*says: str, after: dict[str, Any] | None = None) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    nodes += [{"id": f"s{i}", "type": "say", "text": text} for i, text in enumerate(says)]
    nodes.append(after or {"id": "listen", "type": "listen"})
    ids = [n["id"] for n in nodes]
    return {"name": "Greeting", "nodes": nodes,
            "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]}


async def test_every_organizations_latest_published_greeting_is_found_at_start(
        make_org, pool, app_pool):
    number = secrets.randbelow(90000) + 10000
    bakery, cafe = await make_org(), await make_org()
    bakery_flow = await publish_flow(bakery.client, flow(f"Bakery {number}, version one."))
    r = await bakery.client.get(f"/v1/flows/{bakery_flow}")
    r = await bakery.client.put(f"/v1/flows/{bakery_flow}", json={
        "document": flow(f"Bakery {number}, version two."),
        "draft_revision": r.json()["draft_revision"]})
    assert r.status_code == 200, r.text
    assert (await bakery.client.post(f"/v1/flows/{bakery_flow}/publish")).status_code == 201
    await publish_flow(cafe.client, flow(f"Cafe {number}.", f"Open {number} days a week."))
    await cafe.client.post("/v1/flows", json={"name": "draft only",
                                              "document": flow(f"Draft {number}.")})

    greetings = [opening_says(row["document"])
                 for row in await list_flow_versions_latest_everywhere(pool)]
    ours = [g for g in greetings if any(str(number) in text for text in g)]
    assert sorted(ours) == [[f"Bakery {number}, version two."],
                            [f"Cafe {number}.", f"Open {number} days a week."]]
    # The serving role sees no organization's flows without one set.
    assert await list_flow_versions_latest_everywhere(app_pool) == []


def test_a_greeting_is_the_opening_says_until_the_flow_listens_branches_or_renders() -> None:
    assert opening_says(flow("Hello!", "Say billing or support.")) == [
        "Hello!", "Say billing or support."]
    assert opening_says(flow("Hello {{ name }}.", "Welcome.")) == []
    assert opening_says(flow("Hello.", after={"id": "ask", "type": "llm"})) == ["Hello."]
    branching = flow("Hello.", "Press one.")
    branching["edges"].append({"from": "s0", "to": "listen", "when": "x == 1"})
    assert opening_says(branching) == ["Hello."]
    assert opening_says(flow(after={"id": "ask", "type": "llm"})) == []
