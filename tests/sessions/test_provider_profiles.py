"""Provider profiles through the HTTP API: an organization admin owns base URLs and secret
names; a flow only picks a profile and tunes it. The hostile row of issue 9 (a flow aiming an
organization secret at a server of its choosing) is refused before anything is sent."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from tests.providers.fake_openai import FakeOpenAI

SECRET = "sk-org-secret-0123456789"


def llm_flow(name: str, providers: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "providers": providers,
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "reply", "type": "llm", "instructions": "Be brief."},
                      {"id": "hear", "type": "listen"}],
            "edges": [{"from": "start", "to": "reply"}, {"from": "reply", "to": "hear"}]}


async def publish(client, document: dict[str, Any]) -> str:
    r = await client.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 201, r.text
    flow_id = r.json()["id"]
    r = await client.post(f"/v1/flows/{flow_id}/publish")
    assert r.status_code == 201, r.text
    return flow_id


async def org_with_secret(make_org):
    org = await make_org()
    r = await org.client.put("/v1/secrets/TEAM_KEY", json={"value": SECRET})
    assert r.status_code == 201, r.text
    return org


async def test_a_flow_aiming_an_org_secret_at_its_own_server_is_refused(make_org, pool):
    org = await org_with_secret(make_org)
    async with FakeOpenAI(api_key=SECRET) as server:
        hostile = llm_flow("exfiltrate", {"llm": {
            "kind": "openai-compatible", "base_url": server.url, "model": "m",
            "api_key_secret": "TEAM_KEY"}})
        r = await org.client.post("/v1/flows", json={"name": "x", "document": hostile})
        assert r.status_code == 422, r.text
        fields = {d["field"] for d in r.json()["details"]}
        assert {"providers.llm.base_url", "providers.llm.api_key_secret"} <= fields
        assert "profile" in r.json()["message"]
        # Nor can a flow that picks a profile redirect it.
        sneaky = llm_flow("sneaky", {"llm": {"profile": "main", "base_url": server.url}})
        r = await org.client.post("/v1/flows", json={"name": "y", "document": sneaky})
        assert r.status_code == 422
        assert r.json()["details"][0]["field"] == "providers.llm.base_url"
        assert server.requests == []
    assert await pool.fetchval("SELECT count(*) FROM flows WHERE org_id = $1", org.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0


async def test_a_session_with_an_admin_profile_works_and_records_its_usage(make_org, pool):
    org = await org_with_secret(make_org)
    async with FakeOpenAI(api_key=SECRET, reply="Hi from the profile.") as server:
        profile = {"name": "main", "capability": "llm", "internal": True,
                   "allowed_models": ["m-large"], "max_tokens_cap": 100,
                   "config": {"kind": "openai-compatible", "base_url": server.url,
                              "model": "m", "api_key_secret": "TEAM_KEY"}}
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 200, r.text
        flow = await publish(org.client, llm_flow("ok", {"llm": {
            "profile": "main", "model": "m-large", "temperature": 0.0, "max_tokens": 50}}))
        r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})
        assert r.status_code == 201, r.text
        session = r.json()
        assert [m["text"] for m in session["messages"]] == ["Hi from the profile."]
        ((path, body),) = server.requests
        assert path == "/v1/chat/completions"
        assert body["model"] == "m-large" and body["temperature"] == 0.0
        assert body["max_tokens"] == 50

    # What the session pinned names the profile, never the secret's value.
    row = await pool.fetchrow("SELECT providers FROM sessions WHERE id = $1",
                              UUID(session["id"]))
    assert row["providers"]["profiles"] == {"llm": "main"}
    assert row["providers"]["sources"] == {"llm": "flow"}
    assert SECRET not in json.dumps(row["providers"])
    # The session's page shows the LLM's usage (tokens from the provider's own count).
    page = (await org.client.get(f"/v1/sessions/{session['id']}")).json()
    llm = page["metrics"]["usage"]["llm"]
    assert llm["kind"] == "openai-compatible"
    assert llm["requests"] == 1
    assert llm["prompt_tokens"] == 12 and llm["completion_tokens"] == 4


async def test_a_profile_not_marked_internal_cannot_reach_a_private_address(make_org, pool):
    org = await org_with_secret(make_org)
    async with FakeOpenAI(api_key=SECRET) as server:
        profile = {"name": "main", "capability": "llm",
                   "config": {"kind": "openai-compatible", "base_url": server.url,
                              "model": "m", "api_key_secret": "TEAM_KEY"}}
        r = await org.client.put("/v1/org/providers", json={"profiles": [profile]})
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "egress_refused"
        assert (await org.client.get("/v1/org/providers")).json()["profiles"] == []
        assert server.requests == []


async def test_a_flow_naming_an_unknown_profile_or_a_disallowed_model_cannot_start(make_org,
                                                                                   pool):
    org = await org_with_secret(make_org)
    profile = {"name": "main", "capability": "llm", "internal": True,
               "config": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                          "model": "m", "api_key_secret": "TEAM_KEY"}}
    assert (await org.client.put("/v1/org/providers",
                                 json={"profiles": [profile]})).status_code == 200
    for providers, field in (({"llm": {"profile": "other"}}, "providers.llm.profile"),
                             ({"llm": {"profile": "main", "model": "gpt-4"}},
                              "providers.llm.model")):
        flow = await publish(org.client, llm_flow("f", providers))
        r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})
        assert r.status_code == 422, r.text
        assert r.json()["details"][0]["field"] == field
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0


async def test_missing_secrets_of_a_flow_are_named_before_it_runs(make_org, pool):
    org = await make_org()
    profile = {"name": "main", "capability": "llm", "internal": True,
               "config": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                          "model": "m", "api_key_secret": "LATER_KEY"}}
    assert (await org.client.put("/v1/org/providers",
                                 json={"profiles": [profile]})).status_code == 200
    # Flow editors see what they may pick, without the profile's URL.
    editor = await make_org(role="editor")
    assert (await editor.client.get("/v1/org/provider-profiles")).json() == {"items": []}
    (choice,) = (await org.client.get("/v1/org/provider-profiles")).json()["items"]
    assert choice == {"name": "main", "capability": "llm", "kind": "openai-compatible",
                      "default": False, "model": "m", "allowed_models": [],
                      "max_tokens_cap": None, "required_secrets": ["LATER_KEY"]}
    flow = await publish(org.client, llm_flow("f", {"llm": {"profile": "main"}}))
    r = await org.client.get(f"/v1/flows/{flow}/missing-secrets")
    assert r.status_code == 200 and r.json() == {"missing": ["LATER_KEY"]}
    r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})
    assert r.status_code == 412 and r.json()["missing"] == ["LATER_KEY"]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0
