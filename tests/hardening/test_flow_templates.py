"""A hostile flow author writes templates and conditions that would allocate hundreds of MB or
spin forever, or that try to reach Python internals. Constant bombs and escapes are refused
when the flow is saved (422 naming the node and field, nothing stored); bombs that need the
caller's variables end the session with a recorded reason when it runs, and in neither case
does the API process allocate what was asked for."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "flows"))

from flow_fakes import linear, publish, start_chat

# What the API process may allocate while refusing a bomb (the bombs ask for 100-300 MB).
PEAK_BYTES = 30 * 1024 * 1024


@contextmanager
def peak_allocation() -> Iterator[list[int]]:
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


async def create_refused(client, document: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 422, r.text
    return r.json()["details"]


async def flow_names(client) -> list[str]:
    r = await client.get("/v1/flows")
    assert r.status_code == 200, r.text
    body = r.json()
    return [f["name"] for f in (body["items"] if isinstance(body, dict) else body)]


async def test_constant_bombs_are_refused_at_save_naming_node_and_field(api):
    cases = [
        ({"id": "greet", "type": "say", "text": "{{ 'a' * 100000000 }}"}, "greet", "text",
         "repetition would make a value of 100,000,000"),
        ({"id": "greet", "type": "say", "text": "{{ 'a'.ljust(300000000) }}"}, "greet", "text",
         "str.ljust would make a value of 300,000,000"),
        ({"id": "greet", "type": "say", "text": "{{ 'a'|center(300000000) }}"}, "greet", "text",
         "filter center"),
        ({"id": "greet", "type": "say", "text": "{{ 2 ** 100000000 }}"}, "greet", "text",
         "a power of about 200,000,000 bits"),
        ({"id": "greet", "type": "say", "text": "{{ '{:>300000000}'.format('a') }}"}, "greet",
         "text", "a format width over 1,000,000"),
        ({"id": "greet", "type": "say",
          "text": "{{ ('ab' * 100000) | wordwrap(1, true, 'y' * 100000) }}"}, "greet", "text",
         "filter wordwrap"),
        ({"id": "greet", "type": "say",
          "text": "{{ ('http://a ' * 10000) | urlize(target='x' * 100000) }}"}, "greet",
         "text", "filter urlize"),
        ({"id": "greet", "type": "say",
          "text": "{% set s = 'a' * 900000 %}{% set t = s ~ s %}"}, "greet", "text",
         "~ concatenation would make a value of 1,800,000"),
        ({"id": "calc", "type": "set", "assign": {"n": "len('a'.ljust(200000000))"}}, "calc",
         "assign", "str.ljust would make a value of 200,000,000"),
        ({"id": "calc", "type": "set", "assign": {"n": "len([1] * 10 ** 9)"}}, "calc",
         "assign", "repetition would make a value of 1,000,000,000"),
    ]
    for node, node_id, field, message in cases:
        with peak_allocation() as peak:
            details = await create_refused(api, linear("bomb", node))
        (problem,) = details
        assert problem["node_id"] == node_id, details
        assert field in problem["field"] and message in problem["message"], details
        assert peak[0] < PEAK_BYTES, (node, peak[0])
    assert await flow_names(api) == []


async def test_sandbox_escapes_are_refused_at_save(api):
    for node, field in (
        ({"id": "leak", "type": "say", "text": "{{ ''.__class__.__mro__ }}"}, "text"),
        ({"id": "leak", "type": "say", "text": "{{ cycler.__init__.__globals__ }}"}, "text"),
        ({"id": "leak", "type": "say", "text": "{{ lipsum.__globals__['os'] }}"}, "text"),
        ({"id": "leak", "type": "say",
          "text": "{% macro m() %}{{ caller }}{% endmacro %}{{ m() }}"}, "text"),
        ({"id": "leak", "type": "set", "assign": {"x": "''.__class__"}}, "assign"),
        ({"id": "leak", "type": "set", "assign": {"x": "name.__class__.__base__"}}, "assign"),
        ({"id": "leak", "type": "set", "assign": {"x": "[1].append(2)"}}, "assign"),
    ):
        details = await create_refused(api, linear("escape", node))
        assert [(d["node_id"], field in d["field"]) for d in details] == [("leak", True)], details
    assert await flow_names(api) == []


async def started_and_events(client, document: dict[str, Any],
                             variables: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    flow = await publish(client, document)
    started = await start_chat(client, flow, variables=variables)
    r = await client.get(f"/v1/sessions/{started['id']}/events")
    assert r.status_code == 200, r.text
    return started, r.json()["items"]


def failure(started: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    assert started["status"] == "failed", started
    assert started["messages"] == [], started
    (end,) = [a for a in started["actions"] if a["kind"] == "end"]
    (failed,) = [e["payload"] for e in events if e["type"] == "session.failed"]
    assert failed["reason"] == end["reason"]
    return failed


async def test_a_bomb_fed_by_the_callers_variables_fails_the_session_at_run_time(api):
    for text, message in (("{{ filler.ljust(n) }}", "str.ljust would make a value of"),
                          ("{{ filler * n }}", "repetition would make a value of"),
                          ("{{ (filler ~ filler) | indent(n) }}", "filter indent")):
        doc = linear("late-bomb", {"id": "greet", "type": "say", "text": text},
                     {"id": "bye", "type": "say", "text": "never said"})
        with peak_allocation() as peak:
            started, events = await started_and_events(api, doc,
                                                       {"filler": "a", "n": 300_000_000})
        failed = failure(started, events)
        assert failed["reason"] == "expression_limit" and failed["node_id"] == "greet"
        assert message in failed["message"], failed
        assert peak[0] < PEAK_BYTES, (text, peak[0])
        r = await api.get(f"/v1/sessions/{started['id']}")
        assert r.json()["transcript"] == []


async def test_list_self_extension_in_a_set_node_is_refused(api):
    doc = linear("grow", {"id": "calc", "type": "set",
                          "assign": {"grown": "[items.extend(items) for i in [1, 2, 3]]"}},
                 {"id": "show", "type": "say", "text": "{{ items | length }}"})
    started, events = await started_and_events(api, doc, {"items": [1, 2]})
    failed = failure(started, events)
    assert failed["reason"] == "expression_refused" and failed["node_id"] == "calc"
    assert "list.extend() changes a value in place" in failed["message"]


async def test_a_template_that_spins_is_stopped_by_its_time_limit(api):
    doc = linear("spin", {"id": "greet", "type": "say",
                          "text": "{% for a in items %}{% for b in items %}{% for c in items %}"
                                  "{% endfor %}{% endfor %}{% endfor %}done"})
    started, events = await started_and_events(api, doc, {"items": list(range(1000))})
    failed = failure(started, events)
    assert failed["reason"] == "expression_limit" and failed["node_id"] == "greet"
    assert "took longer than 1 s" in failed["message"], failed


async def test_output_is_capped_while_rendering(api):
    doc = linear("wide", {"id": "greet", "type": "say",
                          "text": "{% for i in range(100000) %}{{ row }}{% endfor %}"},
                 {"id": "bye", "type": "end", "reason": "done"})
    with peak_allocation() as peak:
        started, _ = await started_and_events(api, doc, {"row": "x" * 100})
    (text,) = [m["text"] for m in started["messages"]]
    assert text == "x" * 50_000
    assert started["status"] == "ended"
    # 10 MB of output was asked for; only the capped text (and the stored copies) exist.
    assert peak[0] < PEAK_BYTES, peak[0]
