"""The chat API end to end: a flow with every node type, SSE, replays, version pinning, bad input."""

from __future__ import annotations

import json
from uuid import UUID

from flow_fakes import allow_loopback, every_node_flow, linear, publish, send, start_chat, texts

from db.session_events import list_session_events_for_session
from db.sessions import get_session_brief


async def test_a_flow_with_every_node_type_runs_over_http(make_org, loopback_http, scripted_llm,
                                                          anon, pool):
    org = await make_org()
    await allow_loopback(org.client)
    api = org.client
    child = await publish(api, linear(
        "pin", {"id": "ask", "type": "say", "text": "{{ who }}, your PIN?"},
        {"id": "hear", "type": "listen", "into": "pin"}, {"id": "ok", "type": "end"}))
    flow = await publish(api, every_node_flow(child, loopback_http.url))

    s = await start_chat(api, flow, user={"id": "u-1", "cluster": "acme"})
    assert texts(s) == ["Welcome!", "Your name?"] and s["status"] == "waiting"

    reply = await send(api, s["id"], "name=Ada")
    # collect -> sync http -> async http: waiting for the callback.
    assert reply["messages"] == [] and reply["status"] == "waiting"
    assert [r["path"] for r in loopback_http.requests] == ["/lookup", "/async"]
    callback = loopback_http.requests[1]["headers"]["X-AICO-Callback-URL"]
    r = await anon.post(callback.split("127.0.0.1:8000", 1)[1],
                        json={"type": "tool.result", "result": {"id": "T-7"}})
    assert r.status_code == 200, r.text
    # set -> subflow: the child asks for the PIN.
    assert [m["text"] for m in r.json()["messages"]] == ["Ada, your PIN?"]
    assert [a["kind"] for a in r.json()["actions"]] == ["start_child"]

    reply = await send(api, s["id"], "9876")
    # child ends -> parent: warm transfer, the LLM streams its reply, then listens.
    assert texts(reply) == ["You said: name=Ada"]
    assert [a["kind"] for a in reply["actions"]] == ["transfer"]  # the child's end stays inside

    reply = await send(api, s["id"], "thanks")
    assert texts(reply) == ["Bye Ada (vip=True, pin=9876, ticket=T-7)"]
    assert reply["status"] == "ended"

    r = await api.get(f"/v1/sessions/{s['id']}")
    session = r.json()
    assert session["status"] == "ended" and session["user_id"] == "u-1"
    assert [t["role"] for t in session["transcript"]] == [
        "assistant", "assistant", "user", "assistant", "user", "assistant"]
    events = await list_session_events_for_session(pool, session_id=UUID(s["id"]))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    inbound = [e["type"] for e in events if e["direction"] == "in"]
    # The PIN turn is recorded as forwarded to the child, then the child's completion.
    assert inbound == ["session.started", "user.turn", "tool.result", "user.turn",
                       "child.completed", "llm.completed", "user.turn"]
    forwarded = [e for e in events if e["type"] == "user.turn"][1]
    assert forwarded["result"] == {"forwarded_to": start_child_id(events)}


async def test_messages_stream_as_server_sent_events(api, scripted_llm):
    flow = await publish(api, linear(
        "sse", {"id": "hear", "type": "listen"}, {"id": "think", "type": "llm"},
        {"id": "tail", "type": "say", "text": "Done."}, {"id": "again", "type": "listen"}))
    s = await start_chat(api, flow)
    async with api.stream("POST", f"/v1/sessions/{s['id']}/messages?stream=true",
                          json={"text": "stream me"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join([chunk async for chunk in r.aiter_text()])
    events = []
    for block in body.strip().split("\n\n"):
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    chunks = [d for n, d in events if n == "chunk"]
    assert len(chunks) > 3
    assert "".join(c["text"] for c in chunks if c.get("stream_id")) == "You said: stream me"
    name, final = events[-1]
    assert name == "final"
    assert [m["text"] for m in final["messages"]] == ["You said: stream me", "Done."]
    assert final["status"] == "waiting"


async def test_a_replayed_event_id_changes_nothing(api, pool):
    flow = await publish(api, linear(
        "replay", {"id": "hear", "type": "listen", "into": "said"},
        {"id": "inc", "type": "set", "assign": {"n": "n + 1"}},
        {"id": "echo", "type": "say", "text": "#{{ n }}: {{ said }}"},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "inc"},
               {"from": "inc", "to": "echo"}, {"from": "echo", "to": "hear"}]))
    s = await start_chat(api, flow, variables={"n": 0})
    first = await send(api, s["id"], "hello", event_id="msg-1")
    assert texts(first) == ["#1: hello"]
    before = await get_session_brief(pool, session_id=UUID(s["id"]))
    again = await send(api, s["id"], "hello (resent, different text)", event_id="msg-1")
    assert again["messages"] == first["messages"]
    after = await get_session_brief(pool, session_id=UUID(s["id"]))
    assert (after["version"], after["event_seq"], after["variables"]) == (
        before["version"], before["event_seq"], before["variables"])
    assert texts(await send(api, s["id"], "next", event_id="msg-2")) == ["#2: next"]


async def test_publishing_v2_leaves_a_v1_session_on_v1(api):
    v1 = linear("pinned", {"id": "hear", "type": "listen"},
                {"id": "reply", "type": "say", "text": "from v1"},
                edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "reply"},
                       {"from": "reply", "to": "hear"}])
    flow = await publish(api, v1)
    old = await start_chat(api, flow)
    assert old["flow_version"] == 1
    v2 = json.loads(json.dumps(v1).replace("from v1", "from v2"))
    r = await api.put(f"/v1/flows/{flow}", json={"document": v2, "draft_revision": 1})
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/flows/{flow}/publish")
    assert r.status_code == 201 and r.json()["version"] == 2
    new = await start_chat(api, flow)
    assert new["flow_version"] == 2
    assert texts(await send(api, old["id"], "hi")) == ["from v1"]
    assert texts(await send(api, new["id"], "hi")) == ["from v2"]
    r = await api.get(f"/v1/sessions/{old['id']}")
    assert r.json()["flow_version"] == 1


async def test_bad_requests_get_clear_errors(api, make_org):
    r = await api.post("/v1/flows", json={"name": "draft", "document": linear(
        "draft", {"id": "hi", "type": "say", "text": "hi"})})
    draft = r.json()["id"]
    r = await api.post(f"/v1/flows/{draft}/sessions", json={"channel": "chat"})
    assert r.status_code == 404 and "no published version" in r.json()["message"]
    r = await api.post("/v1/flows/00000000-0000-0000-0000-000000000000/sessions", json={})
    assert r.status_code == 404

    flow = await publish(api, linear("echo", {"id": "hear", "type": "listen"}))
    s = await start_chat(api, flow)
    r = await api.post(f"/v1/flows/{flow}/sessions", json={"channel": "fax"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "channel"
    r = await api.post(f"/v1/sessions/{s['id']}/messages", json={"text": "x" * 4001})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "text"
    r = await api.post(f"/v1/sessions/{s['id']}/messages", json={"text": "hi", "extra": 1})
    assert r.status_code == 422
    r = await api.post(f"/v1/sessions/{s['id']}/messages", json={"text": "hi",
                                                                 "event_id": "bad id!"})
    assert r.status_code == 422
    # Another organization cannot see or drive this session.
    other = await make_org()
    r = await other.client.post(f"/v1/sessions/{s['id']}/messages", json={"text": "hi"})
    assert r.status_code == 404
    r = await other.client.post(f"/v1/flows/{flow}/sessions", json={})
    assert r.status_code == 404


async def test_callback_urls_need_a_valid_signature(anon, api):
    flow = await publish(api, linear("cb", {"id": "hear", "type": "listen"}))
    s = await start_chat(api, flow)
    base = f"/v1/sessions/{s['id']}/events"
    r = await anon.post(base, json={"type": "tool.result", "result": 1})
    assert r.status_code == 422  # no call_id / sig at all
    r = await anon.post(base, params={"call_id": "a" * 32, "sig": "b" * 64},
                        json={"type": "tool.result", "result": 1})
    assert r.status_code == 403


async def test_missing_provider_secrets_fail_with_412_before_anything_runs(make_org, pool,
                                                                           settings):
    from db.sessions import list_sessions
    from providers.secrets import store_secret

    org = await make_org()
    doc = linear("cloud", {"id": "hi", "type": "say", "text": "hi"},
                 {"id": "hear", "type": "listen"})
    # The organization's admin owns the profile (kind, secret name); the flow picks it.
    r = await org.client.put("/v1/org/providers", json={"profiles": [{
        "name": "acme", "capability": "llm", "internal": True,
        "config": {"kind": "openai", "api_key_secret": "ACME_OPENAI_KEY"}}]})
    assert r.status_code == 200, r.text
    doc["providers"] = {"llm": {"profile": "acme"}}
    flow = await publish(org.client, doc)
    r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "chat"})
    assert r.status_code == 412, r.text
    assert r.json()["missing"] == ["ACME_OPENAI_KEY"]
    assert await list_sessions(pool, org_id=org.id) == []
    await store_secret(pool, org_id=org.id, name="ACME_OPENAI_KEY", value="sk-test",
                       settings=settings)
    s = await start_chat(org.client, flow)
    assert texts(s) == ["hi"]
    r = await org.client.get(f"/v1/sessions/{s['id']}")
    assert r.status_code == 200
    row = await pool.fetchrow("SELECT providers FROM sessions WHERE id = $1", UUID(s["id"]))
    assert row["providers"]["configs"]["llm"]["kind"] == "openai"
    assert "sk-test" not in json.dumps(row["providers"])


async def test_the_seeded_demo_flow_runs(api, scripted_llm):
    from flows.demo import demo_flow_document

    flow = await publish(api, demo_flow_document())
    s = await start_chat(api, flow)
    assert texts(s) == ["Hello! I'm the AICO demo assistant. Ask me anything, or say goodbye."]
    assert texts(await send(api, s["id"], "What is AICO?")) == ["You said: What is AICO?",
                                                                 "Anything else?"]
    reply = await send(api, s["id"], "No thanks, bye!")
    assert texts(reply) == ["Goodbye, and thanks for trying AICO!"]
    assert reply["status"] == "ended"


async def test_a_replay_returns_the_same_answer_with_llm_and_subflow(api, pool, scripted_llm):
    child = await publish(api, linear(
        "code", {"id": "ask", "type": "say", "text": "Code?"},
        {"id": "hear", "type": "listen", "into": "code"}, {"id": "fin", "type": "end"}))
    flow = await publish(api, linear(
        "replays", {"id": "hear", "type": "listen"}, {"id": "think", "type": "llm"},
        {"id": "then", "type": "say", "text": "Now the code."},
        {"id": "sub", "type": "subflow", "flow_id": child, "into": "child"},
        {"id": "back", "type": "say", "text": "Got {{ child.code }}."},
        {"id": "again", "type": "listen"}))
    s = await start_chat(api, flow)
    first = await send(api, s["id"], "hello", event_id="r-1")
    assert texts(first) == ["You said: hello", "Now the code.", "Code?"]
    second = await send(api, s["id"], "1234", event_id="r-2")
    assert texts(second) == ["Got 1234."]

    parent_before = await get_session_brief(pool, session_id=UUID(s["id"]))
    events_before = await list_session_events_for_session(pool, session_id=UUID(s["id"]))
    assert texts(await send(api, s["id"], "hello again?", event_id="r-1")) == texts(first)
    # The child has ended and the parent moved on: the retried turn still goes nowhere new.
    assert texts(await send(api, s["id"], "9999", event_id="r-2")) == texts(second)
    parent_after = await get_session_brief(pool, session_id=UUID(s["id"]))
    assert parent_after["version"] == parent_before["version"]
    assert parent_after["variables"] == parent_before["variables"]
    assert len(await list_session_events_for_session(pool, session_id=UUID(s["id"]))) == len(
        events_before)
    assert len(scripted_llm.requests) == 1


def start_child_id(events: list) -> str:
    (requested,) = [e for e in events if e["type"] == "child.requested"]
    return requested["payload"]["child_session_id"]
