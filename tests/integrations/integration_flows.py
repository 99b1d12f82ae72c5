"""A deterministic echo flow (no LLM) that integration tests publish over the API."""

from __future__ import annotations

import httpx

ECHO = {
    "name": "Echo",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "hear", "type": "listen", "into": "said"},
              {"id": "echo", "type": "say", "text": "You said {{ said }}"}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "echo"},
              {"from": "echo", "to": "hear"}],
}


async def publish_echo(client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/flows", json={"name": "Echo", "document": ECHO})
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    assert (await client.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    return flow_id
