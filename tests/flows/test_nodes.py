"""One story per node type, driven through the chat API against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

from flow_fakes import (
    ScriptedLLM,
    allow_loopback,
    linear,
    publish,
    scripted_opener,
    send,
    start_chat,
    texts,
)

from db.session_events import list_session_events_for_session
from db.sessions import get_session_brief
from flows.document import LLMNode
from flows.events import InboundEvent, SayChunk
from flows.executor import step
from flows.llm_context import CHANNEL_HINTS, llm_messages
from providers.llm import LLMChunk


async def test_start_say_end(api, pool):
    flow = await publish(api, linear(
        "hello", {"id": "hi", "type": "say", "text": "Hi {{ name }}!"},
        {"id": "bye", "type": "end", "reason": "said_hi"}))
    started = await start_chat(api, flow, variables={"name": "Ada"})
    assert texts(started) == ["Hi Ada!"]
    assert started["status"] == "ended"
    assert started["actions"] == [{"kind": "end", "reason": "said_hi", "node_id": "bye",
                                   "session_id": started["id"]}]
    r = await api.get(f"/v1/sessions/{started['id']}")
    assert [(t["role"], t["text"]) for t in r.json()["transcript"]] == [("assistant", "Hi Ada!")]


async def test_listen_stores_the_turn_and_branches_on_when(api):
    flow = await publish(api, linear(
        "branch",
        {"id": "ask", "type": "say", "text": "Sales or support?"},
        {"id": "hear", "type": "listen", "into": "choice"},
        {"id": "sales", "type": "say", "text": "Sales it is."},
        {"id": "support", "type": "say", "text": "Support: you said {{ choice }}."},
        edges=[{"from": "start", "to": "ask"}, {"from": "ask", "to": "hear"},
               {"from": "hear", "to": "sales", "when": "contains(choice, 'sales')"},
               {"from": "hear", "to": "support"}]))
    s1 = await start_chat(api, flow)
    assert texts(s1) == ["Sales or support?"] and s1["status"] == "waiting"
    assert texts(await send(api, s1["id"], "SALES please")) == ["Sales it is."]
    s2 = await start_chat(api, flow)
    reply = await send(api, s2["id"], "my printer is broken")
    assert texts(reply) == ["Support: you said my printer is broken."]
    assert reply["status"] == "ended"
    r = await api.get(f"/v1/sessions/{s2['id']}")
    assert r.json()["variables"]["choice"] == "my printer is broken"


async def test_set_assigns_expressions(api):
    flow = await publish(api, linear(
        "count", {"id": "inc", "type": "set", "assign": {"n": "n * 2 + 1", "big": "n > 2"}},
        {"id": "show", "type": "say", "text": "{{ n }} {{ big }}"}))
    flow_doc_vars = await start_chat(api, flow, variables={"n": 3})
    assert texts(flow_doc_vars) == ["7 True"]


async def test_llm_streams_before_anything_is_persisted(api, pool, settings):
    flow = await publish(api, linear(
        "llm", {"id": "hear", "type": "listen"},
        {"id": "think", "type": "llm", "instructions": "Be brief.", "into": "answer"},
        {"id": "after", "type": "say", "text": "({{ answer }})"},
        {"id": "again", "type": "listen"}))
    sid = (await start_chat(api, flow))["id"]
    gate = asyncio.Event()
    llm = ScriptedLLM(gate=gate)
    stream = step(pool, sid, InboundEvent.user_turn("hello there"), settings=settings,
                  open_llm=scripted_opener(llm))
    first = await anext(stream)
    assert isinstance(first, SayChunk) and first.text == "You" and not first.final
    # The reply is incomplete and nothing of it is stored yet.
    log = await list_session_events_for_session(pool, session_id=UUID(sid))
    assert "llm.reply" not in [e["type"] for e in log]
    assert "llm.requested" in [e["type"] for e in log]
    gate.set()
    rest = [a async for a in stream]
    chunks = [first, *[a for a in rest if isinstance(a, SayChunk)]]
    assert "".join(c.text for c in chunks) == "You said: hello there"
    assert chunks[-1].final
    assert [a.kind for a in rest if not isinstance(a, SayChunk)] == ["say", "listen"]
    log = await list_session_events_for_session(pool, session_id=UUID(sid))
    reply = [e for e in log if e["type"] == "llm.reply"]
    assert len(reply) == 1 and reply[0]["payload"]["text"] == "You said: hello there"
    system = llm.requests[0][0]
    assert system.role == "system" and "Be brief." in system.content
    assert "Markdown" in system.content  # the chat channel hint
    brief = await get_session_brief(pool, session_id=UUID(sid))
    assert brief["variables"]["answer"] == "You said: hello there"


def test_a_phone_calls_llm_is_told_it_is_speaking_as_a_voice_calls_is():
    node = LLMNode.model_validate({"id": "think", "type": "llm", "instructions": "Be brief."})
    history = [{"role": "user", "content": "when do you open?"}]
    phone, voice = (llm_messages(node, variables={}, history=history, channel=channel)
                    for channel in ("phone", "voice"))
    assert phone == voice  # one prompt prefix: a phone call's first turn finds the warm slots
    assert phone[0]["content"] == CHANNEL_HINTS["voice"] + "\n\nBe brief."
    assert "speakable" in phone[0]["content"] and "<" not in phone[0]["content"]  # no markup


async def test_llm_voice_channel_hint_and_barge_in(pool, settings, make_org):
    org = await make_org()
    flow = await publish(org.client, linear(
        "voice", {"id": "hear", "type": "listen"}, {"id": "think", "type": "llm"},
        {"id": "again", "type": "listen", "into": "next"},
        {"id": "echo", "type": "say", "text": "next={{ next }}"}))
    r = await org.client.post(f"/v1/flows/{flow}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["messages"] == [] and "voice" in r.json()
    llm = ScriptedLLM()
    opener = scripted_opener(llm)
    assert [a.kind for a in [a async for a in step(pool, sid, InboundEvent.session_started(),
                                                   settings=settings)]] == ["listen"]
    stream = step(pool, sid, InboundEvent.user_turn("tell me a story"), settings=settings,
                  open_llm=opener)
    first = await anext(stream)
    await stream.aclose()  # the caller barged in: the actor stops consuming
    assert "speakable" in llm.requests[0][0].content
    # The next turn lands while the reply was never confirmed: it goes to the next listen.
    actions = [a async for a in step(pool, sid, InboundEvent.user_turn("stop"),
                                     settings=settings, open_llm=opener)]
    assert [(a.kind, getattr(a, "text", None)) for a in actions] == [("say", "next=stop"),
                                                                      ("end", None)]
    assert first.stream_id
    log = await list_session_events_for_session(pool, session_id=UUID(sid))
    assert "llm.reply" not in [e["type"] for e in log]


async def test_llm_completed_with_interruption_records_what_was_heard(pool, settings, api):
    flow = await publish(api, linear(
        "heard", {"id": "hear", "type": "listen"}, {"id": "think", "type": "llm"},
        {"id": "again", "type": "listen"}))
    sid = (await start_chat(api, flow))["id"]
    stream = step(pool, sid, InboundEvent.user_turn("hi"), settings=settings,
                  open_llm=scripted_opener())
    first = await anext(stream)
    await stream.aclose()
    done = InboundEvent.llm_completed(first.stream_id, "You said", interrupted=True)
    actions = [a async for a in step(pool, sid, done, settings=settings)]
    assert [a.kind for a in actions] == ["listen"]
    r = await api.get(f"/v1/sessions/{sid}")
    assert [t["text"] for t in r.json()["transcript"]] == ["hi", "You said"]


class _CutShortLLM(ScriptedLLM):
    """A reply whose model replica was lost after two tokens (providers/serve_clients.py ends
    such a stream with what was delivered and an `interrupted` finish)."""

    async def _chat_impl(self, messages, **options):
        self.requests.append(messages)
        yield LLMChunk(text="We open")
        yield LLMChunk(text=" at")
        yield LLMChunk(finish_reason="interrupted")


async def test_a_reply_cut_short_by_a_lost_model_replica_is_stored_as_interrupted(
        pool, settings, api):
    flow = await publish(api, linear(
        "cut", {"id": "hear", "type": "listen"}, {"id": "think", "type": "llm"},
        {"id": "again", "type": "listen"}))
    sid = (await start_chat(api, flow))["id"]
    actions = [a async for a in step(pool, sid, InboundEvent.user_turn("when do you open?"),
                                     settings=settings, open_llm=scripted_opener(_CutShortLLM()))]
    assert "".join(a.text for a in actions if isinstance(a, SayChunk)) == "We open at"
    log = await list_session_events_for_session(pool, session_id=UUID(sid))
    completed = [e for e in log if e["type"] == "llm.completed"]
    assert len(completed) == 1 and completed[0]["payload"]["interrupted"] is True
    reply = [e for e in log if e["type"] == "llm.reply"]
    assert reply[0]["payload"]["interrupted"] is True and reply[0]["payload"]["text"] == "We open at"


async def test_collect_extracts_validates_and_reasks(api, scripted_llm):
    flow = await publish(api, linear(
        "collect",
        {"id": "form", "type": "collect", "prompt": "Your name and age?", "max_attempts": 3,
         "fields": {"name": {"type": "string", "description": "your name"},
                    "age": {"type": "integer", "description": "your age"},
                    "vip": {"type": "boolean", "required": False}}},
        {"id": "done", "type": "say", "text": "{{ name }} is {{ age }}"}))
    s = await start_chat(api, flow)
    assert texts(s) == ["Your name and age?"]
    reply = await send(api, s["id"], "name=Ada age=many")
    assert texts(reply) == ["Sorry, I still need: your age."] and reply["status"] == "waiting"
    reply = await send(api, s["id"], "age=36")
    assert texts(reply) == ["Ada is 36"]
    r = await api.get(f"/v1/sessions/{s['id']}")
    assert r.json()["variables"]["age"] == 36 and r.json()["variables"]["form_missing"] == []
    fmt = json.dumps(scripted_llm.requests[-1][0].content)
    assert "your age" in fmt


async def test_collect_gives_up_after_max_attempts(api, scripted_llm):
    flow = await publish(api, linear(
        "collect2",
        {"id": "form", "type": "collect", "max_attempts": 2,
         "fields": {"email": {"type": "string"}}},
        {"id": "done", "type": "say", "text": "missing {{ form_missing }}"}))
    s = await start_chat(api, flow)
    assert texts(await send(api, s["id"], "no idea")) == ["Sorry, I still need: email."]
    assert texts(await send(api, s["id"], "still no")) == ["missing ['email']"]


async def test_http_sync_calls_a_loopback_api_when_the_org_allows(make_org, loopback_http):
    org = await make_org()
    await allow_loopback(org.client)
    flow = await publish(org.client, linear(
        "http",
        {"id": "call", "type": "http", "method": "POST", "url": loopback_http.url + "/orders",
         "headers": {"X-Who": "{{ who }}"}, "body": {"item": "tea"}, "into": "res"},
        {"id": "show", "type": "say", "text": "{{ res.status }} {{ res.body.ok }}"}))
    s = await start_chat(org.client, flow, variables={"who": "ada"})
    assert texts(s) == ["200 True"]
    (req,) = loopback_http.requests
    assert req["path"] == "/orders" and req["headers"]["X-Who"] == "ada"
    assert json.loads(req["body"]) == {"item": "tea"}


async def test_http_refuses_private_targets_by_default(api, loopback_http):
    flow = await publish(api, linear(
        "ssrf",
        {"id": "call", "type": "http", "url": loopback_http.url + "/secret", "into": "res"},
        {"id": "show", "type": "say", "text": "{{ res.refused }}: {{ res.error }}"}))
    s = await start_chat(api, flow)
    (text,) = texts(s)
    assert text.startswith("True: refused to connect to 127.0.0.1 (127.0.0.1): a loopback"), text
    assert loopback_http.requests == []
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://[::1]/"):
        flow = await publish(api, linear(
            "ssrf2", {"id": "call", "type": "http", "url": url, "into": "res"},
            {"id": "show", "type": "say", "text": "{{ res.refused }}"}))
        assert texts(await start_chat(api, flow)) == ["True"], url


async def test_http_async_waits_for_the_signed_callback(make_org, loopback_http, anon):
    org = await make_org()
    await allow_loopback(org.client)
    flow = await publish(org.client, linear(
        "async",
        {"id": "call", "type": "http", "method": "POST", "url": loopback_http.url + "/async",
         "body": {"reply_to": "{{ callback_url }}"}, "async": True, "into": "res"},
        {"id": "show", "type": "say", "text": "result {{ res.score }}"}))
    s = await start_chat(org.client, flow)
    assert s["messages"] == [] and s["status"] == "waiting"
    (req,) = loopback_http.requests
    url = req["headers"]["X-AICO-Callback-URL"]
    path = url.split("127.0.0.1:8000", 1)[1]
    assert f"/v1/sessions/{s['id']}/events?" in path
    forged = path[:-4] + ("0000" if not path.endswith("0000") else "1111")
    r = await anon.post(forged, json={"type": "tool.result", "result": {"score": 1}})
    assert r.status_code == 403, r.text
    r = await anon.post(path, json={"type": "tool.result", "result": {"score": 9}})
    assert r.status_code == 200, r.text
    assert [m["text"] for m in r.json()["messages"]] == ["result 9"]
    # The same callback again (a retried delivery) changes nothing.
    r = await anon.post(path, json={"type": "tool.result", "result": {"score": 5}})
    assert r.status_code == 200 and [m["text"] for m in r.json()["messages"]] == ["result 9"]
    r = await org.client.get(f"/v1/sessions/{s['id']}")
    assert r.json()["variables"]["res"] == {"score": 9}


async def test_subflow_child_completion_resumes_the_parent(api, pool):
    child = await publish(api, linear(
        "child", {"id": "ask", "type": "say", "text": "Child here, {{ who }}. Your code?"},
        {"id": "hear", "type": "listen", "into": "code"},
        {"id": "bye", "type": "end", "reason": "child_done"}))
    parent = await publish(api, linear(
        "parent", {"id": "hello", "type": "say", "text": "Parent first."},
        {"id": "sub", "type": "subflow", "flow_id": child, "inputs": {"who": "{{ name }}"},
         "into": "child"},
        {"id": "resume", "type": "say", "text": "Back in the parent: code {{ child.code }}."},
        {"id": "hear", "type": "listen"}))
    s = await start_chat(api, parent, variables={"name": "Ada"})
    assert texts(s) == ["Parent first.", "Child here, Ada. Your code?"]
    (start_child,) = [a for a in s["actions"] if a["kind"] == "start_child"]
    reply = await send(api, s["id"], "4242")
    assert texts(reply) == ["Back in the parent: code 4242."]
    assert reply["actions"] == []  # the child's own end is not the caller's
    assert reply["status"] == "waiting"
    child_row = await get_session_brief(pool, session_id=UUID(start_child["child_session_id"]))
    assert child_row["status"] == "ended"
    assert str(child_row["parent_session_id"]) == s["id"]


async def test_transfer_cold_ends_and_warm_continues(api):
    cold = await publish(api, linear(
        "cold", {"id": "xfer", "type": "transfer", "to": "+1555{{ ext }}", "mode": "cold"},
        {"id": "never", "type": "say", "text": "not reached"}))
    s = await start_chat(api, cold, variables={"ext": "0100"})
    assert s["messages"] == [] and s["status"] == "ended"
    assert s["actions"][0] == {"kind": "transfer", "to": "+15550100", "mode": "cold",
                               "node_id": "xfer"}
    assert s["actions"][1]["reason"] == "transferred"
    warm = await publish(api, linear(
        "warm", {"id": "xfer", "type": "transfer", "to": "sip:desk@example.com", "mode": "warm"},
        {"id": "after", "type": "say", "text": "Still here."}))
    s = await start_chat(api, warm)
    assert texts(s) == ["Still here."] and s["actions"][0]["mode"] == "warm"


async def test_timer_fired_at_a_listen_follows_the_timer_edge(api, pool, settings):
    flow = await publish(api, linear(
        "timer", {"id": "hear", "type": "listen"},
        {"id": "nudge", "type": "say", "text": "Are you still there?"},
        {"id": "ok", "type": "say", "text": "ok"},
        edges=[{"from": "start", "to": "hear"},
               {"from": "hear", "to": "nudge", "when": "timer_fired == 'no_input'"},
               {"from": "hear", "to": "ok"}, {"from": "nudge", "to": "hear"}]))
    sid = (await start_chat(api, flow))["id"]
    actions = [a async for a in step(pool, sid, InboundEvent.timer_fired("no_input"),
                                     settings=settings)]
    assert [getattr(a, "text", a.kind) for a in actions] == ["Are you still there?", "listen"]
    assert texts(await send(api, sid, "yes")) == ["ok"]


async def test_session_ended_event_ends_the_session(api, pool, settings):
    flow = await publish(api, linear("hangup", {"id": "hear", "type": "listen"}))
    sid = (await start_chat(api, flow))["id"]
    actions = [a async for a in step(pool, sid, InboundEvent.session_ended("caller_hung_up"),
                                     settings=settings)]
    assert [(a.kind, a.reason) for a in actions] == [("end", "caller_hung_up")]
    r = await api.post(f"/v1/sessions/{sid}/messages", json={"text": "hello?"})
    assert r.status_code == 409 and "ended" in r.json()["message"]


async def test_a_childs_interrupted_reply_is_confirmed_through_the_parent(api, pool, settings):
    child = await publish(api, linear(
        "child-llm", {"id": "hear", "type": "listen"}, {"id": "think", "type": "llm"},
        {"id": "after", "type": "listen", "into": "after"}, {"id": "bye", "type": "end"}))
    parent = await publish(api, linear(
        "parent-llm", {"id": "sub", "type": "subflow", "flow_id": child, "into": "child"},
        {"id": "back", "type": "say", "text": "parent got {{ child.after }}"}))
    s = await start_chat(api, parent)
    (start_child,) = [a for a in s["actions"] if a["kind"] == "start_child"]
    stream = step(pool, s["id"], InboundEvent.user_turn("hi"), settings=settings,
                  open_llm=scripted_opener())
    first = await anext(stream)
    await stream.aclose()  # barge-in while the child's LLM was speaking
    heard = InboundEvent.llm_completed(first.stream_id, "You", interrupted=True)
    actions = [a async for a in step(pool, s["id"], heard, settings=settings)]
    assert [a.kind for a in actions] == ["listen"]
    actions = [a async for a in step(pool, s["id"], InboundEvent.user_turn("done"),
                                     settings=settings)]
    assert [(a.kind, getattr(a, "text", None)) for a in actions] == [
        ("say", "parent got done"), ("end", None)]
    assert actions[-1].session_id == s["id"]
    r = await api.get(f"/v1/sessions/{start_child['child_session_id']}")
    assert [(t["role"], t["text"]) for t in r.json()["transcript"]] == [
        ("user", "hi"), ("assistant", "You"), ("user", "done")]


async def test_llm_without_history_or_speech(api, scripted_llm):
    flow = await publish(api, linear(
        "quiet", {"id": "hear", "type": "listen"},
        {"id": "think", "type": "llm", "history": False, "say": False, "into": "note"},
        {"id": "show", "type": "say", "text": "noted: {{ note }}"},
        edges=[{"from": "start", "to": "hear"}, {"from": "hear", "to": "think"},
               {"from": "think", "to": "show"}, {"from": "show", "to": "hear"}]))
    s = await start_chat(api, flow)
    assert texts(await send(api, s["id"], "one")) == ["noted: You said: one"]
    assert texts(await send(api, s["id"], "two")) == ["noted: You said: two"]
    # Only the system prompt and the latest user turn, not the conversation so far.
    assert [m.role for m in scripted_llm.requests[-1]] == ["system", "user"]
    assert scripted_llm.requests[-1][-1].content == "two"
