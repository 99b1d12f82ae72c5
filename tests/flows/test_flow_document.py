"""Malformed flows are refused at save and at publish, with messages that name the node."""

from __future__ import annotations

from typing import Any

from flow_fakes import linear


async def _save(api, doc: dict[str, Any]):
    return await api.post("/v1/flows", json={"name": doc["name"], "document": doc})


async def _publish(api, doc: dict[str, Any]):
    r = await _save(api, doc)
    assert r.status_code == 201, r.text
    return await api.post(f"/v1/flows/{r.json()['id']}/publish")


def _by_node(body: dict[str, Any]) -> dict[str, str]:
    return {d.get("node_id"): d["message"] for d in body["details"]}


async def test_unknown_type_and_unknown_field_are_refused_at_save(api):
    doc = linear("bad", {"id": "greet", "type": "say", "text": "hi", "voice": "loud"},
                 {"id": "mystery", "type": "teleport"},
                 {"id": "ask", "type": "listen", "into": "not a name"})
    r = await _save(api, doc)
    assert r.status_code == 422, r.text
    by_node = _by_node(r.json())
    assert by_node["greet"] == "node 'greet': unknown field 'voice' for a say node"
    assert "unknown node type 'teleport'" in by_node["mystery"]
    assert by_node["ask"].startswith("node 'ask':")


async def test_bad_templates_and_conditions_name_the_node(api):
    r = await _save(api, linear("tpl", {"id": "greet", "type": "say", "text": "Hi {{ name "}))
    assert r.status_code == 422
    (detail,) = r.json()["details"]
    assert detail["node_id"] == "greet" and detail["field"] == "text"
    doc = linear("cond", {"id": "ask", "type": "listen"}, {"id": "x", "type": "say", "text": "x"},
                 edges=[{"from": "start", "to": "ask"},
                        {"from": "ask", "to": "x", "when": "choice ==="}])
    r = await _save(api, doc)
    assert r.status_code == 422
    (detail,) = r.json()["details"]
    assert detail["node_id"] == "ask" and "invalid expression" in detail["message"]


async def test_graph_rules_are_checked_at_publish(api):
    two_starts = linear("starts", {"id": "start2", "type": "start"})
    r = await _publish(api, two_starts)
    assert r.status_code == 422
    assert "exactly one start" in r.json()["details"][0]["message"]

    dangling = linear("dangling", {"id": "hi", "type": "say", "text": "hi"},
                      edges=[{"from": "start", "to": "hi"}, {"from": "hi", "to": "nowhere"}])
    r = await _publish(api, dangling)
    assert r.status_code == 422
    assert _by_node(r.json())["hi"] == "edge 'hi' -> 'nowhere' points at unknown node 'nowhere'"

    orphan = linear("orphan", {"id": "hi", "type": "say", "text": "hi"},
                    {"id": "lost", "type": "say", "text": "?"}, edges=[{"from": "start", "to": "hi"}])
    r = await _publish(api, orphan)
    assert _by_node(r.json()) == {"lost": "node 'lost' is not reachable from the start"}

    busy_loop = linear("loop", {"id": "a", "type": "say", "text": "a"},
                       {"id": "b", "type": "set", "assign": {"n": "1"}},
                       edges=[{"from": "start", "to": "a"}, {"from": "a", "to": "b"},
                              {"from": "b", "to": "a"}])
    r = await _publish(api, busy_loop)
    assert r.status_code == 422
    assert _by_node(r.json()) == {"a": "loop without a listen or wait: a -> b"}

    listening_loop = linear("ok-loop", {"id": "a", "type": "say", "text": "a"},
                            {"id": "hear", "type": "listen"},
                            edges=[{"from": "start", "to": "a"}, {"from": "a", "to": "hear"},
                                   {"from": "hear", "to": "a"}])
    r = await _publish(api, listening_loop)
    assert r.status_code == 201, r.text


async def test_end_nodes_cannot_lead_anywhere(api):
    doc = linear("end-edge", {"id": "fin", "type": "end"}, {"id": "after", "type": "say",
                                                           "text": "x"})
    r = await _publish(api, doc)
    assert r.status_code == 422
    assert "end node 'fin' cannot have outgoing edges" in _by_node(r.json())["fin"]


async def test_schema_lists_every_node_type(api):
    r = await api.get("/v1/flows/schema")
    assert r.status_code == 200
    schema = r.json()
    types = {d["properties"]["type"]["const"] for d in schema["$defs"].values()
             if "type" in d.get("properties", {}) and "const" in d["properties"]["type"]}
    assert types == {"start", "end", "say", "listen", "llm", "collect", "http", "subflow",
                     "transfer", "set", "rag"}
    assert "async" in schema["$defs"]["HttpNode"]["properties"]
