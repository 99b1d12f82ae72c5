"""The dashboard builds its node forms from `GET /v1/flows/schema`; its unit tests run on a copy
of that schema (`frontend/src/flows/fixtures/flow-schema.json`). The copy must be what the
server serves, or the dashboard's tests pass against a schema no server sends."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "frontend/src/flows/fixtures/flow-schema.json"


async def test_the_dashboard_fixture_is_the_schema_the_server_serves(api):
    response = await api.get("/v1/flows/schema")
    assert response.status_code == 200
    served = response.json()
    fixture = json.loads(FIXTURE.read_text())
    # Compare by node type first so a drift names the node that drifted.
    served_defs, fixture_defs = served.get("$defs", {}), fixture.get("$defs", {})
    assert sorted(fixture_defs) == sorted(served_defs)
    for name, definition in served_defs.items():
        assert fixture_defs[name] == definition, (
            f"{name} differs: refresh {FIXTURE.name} from GET /v1/flows/schema")
    assert fixture == served
