"""A WhatsApp user talks to a published flow: Meta's signed notifications in, replies out
through the Graph API (a loopback stand-in), with what was stored checked at each step."""

from __future__ import annotations

import json
import time

from graph_standin import eventually, notification, sign, text_message

USER = "4915112345678"


def now() -> int:
    return int(time.time())


async def outbox(pool, org_id):
    return await pool.fetch("SELECT * FROM whatsapp_outbox WHERE org_id = $1 ORDER BY id", org_id)


async def test_a_text_turn_is_answered_and_its_statuses_are_stored(wa_org, graph, pool):
    org = await wa_org()
    ack = await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.IN1", "hello **there**", now())]))
    assert ack.status_code == 200 and ack.json()["received"] == 1

    await eventually(lambda: _count(graph, USER, 2))
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: hello *there*"]
    sent = graph.sent[-1]
    assert sent["path"] == f"/v21.0/{org.phone_number_id}/messages"
    assert sent["payload"]["messaging_product"] == "whatsapp" and sent["payload"]["to"] == USER

    session = await pool.fetchrow("SELECT id, channel, user_id FROM sessions WHERE org_id = $1",
                                  org.id)
    assert (session["channel"], session["user_id"]) == ("whatsapp", USER)
    # Monitoring lists it under its channel, with the turn in its transcript.
    listed = (await org.api.get("/v1/sessions", params={"channel": "whatsapp"})).json()
    assert [s["id"] for s in listed["items"]] == [str(session["id"])]
    shown = (await org.api.get(f"/v1/sessions/{session['id']}")).json()
    assert [t["text"] for t in shown["transcript"]][-2:] == ["hello **there**",
                                                             "Echo: hello **there**"]
    inbox = await pool.fetchrow("SELECT processed_at, outcome FROM whatsapp_inbox"
                                " WHERE org_id = $1", org.id)
    assert inbox["processed_at"] is not None and inbox["outcome"] == "applied"
    rows = await eventually(lambda: _all_sent(pool, org.id, 2))
    assert [r["wamid"] for r in rows] == [m["id"] for m in graph.sent[-2:]]
    assert all(r["session_id"] == session["id"] for r in rows)

    # A second message resumes the same session.
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.IN2", "again", now())]))
    await eventually(lambda: _count(graph, USER, 3))
    assert graph.texts_to(USER)[-1] == "Echo: again"
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1
    conversations = (await org.api.get("/v1/channels/whatsapp/conversations")).json()["items"]
    assert [(c["wa_user"], c["session_id"], c["closed_at"]) for c in conversations] == \
        [(USER, str(session["id"]), None)]

    # Meta reports delivery and reading of the reply, and a failure with its code.
    first, second = rows
    statuses = [{"id": first["wamid"], "status": "delivered", "timestamp": str(now()),
                 "recipient_id": USER},
                {"id": first["wamid"], "status": "read", "timestamp": str(now()),
                 "recipient_id": USER},
                {"id": second["wamid"], "status": "failed", "timestamp": str(now()),
                 "recipient_id": USER,
                 "errors": [{"code": 131026, "title": "Message undeliverable"}]}]
    ack = await org.deliver(notification(org.phone_number_id, statuses=statuses))
    assert ack.status_code == 200 and ack.json()["statuses"] == 3
    after = {r["wamid"]: r for r in await outbox(pool, org.id)}
    assert after[first["wamid"]]["status"] == "read"
    assert (after[second["wamid"]]["status"], after[second["wamid"]]["error_code"]) == \
        ("failed", 131026)
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_statuses WHERE org_id = $1",
                               org.id) == 3


async def test_a_batched_notification_answers_every_message_of_every_user(wa_org, graph, pool):
    org = await wa_org()
    other = "4479460000001"
    t = now()
    payload = notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.B1", "one", t), text_message(other, "wamid.B2", "uno", t)])
    # A second entry with another change in the same notification.
    payload["entry"].append(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.B3", "two", t + 1)])["entry"][0])
    ack = await org.deliver(payload)
    assert ack.status_code == 200 and ack.json()["received"] == 3

    await eventually(lambda: _count(graph, USER, 3))
    await eventually(lambda: _count(graph, other, 2))
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: one", "Echo: two"]
    assert graph.texts_to(other) == ["Hi! I echo.", "Echo: uno"]
    users = await pool.fetch("SELECT user_id FROM sessions WHERE org_id = $1 ORDER BY user_id",
                             org.id)
    assert [r["user_id"] for r in users] == sorted([USER, other])


async def test_the_same_wamid_delivered_three_times_is_one_turn(wa_org, graph, pool):
    org = await wa_org()
    payload = notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.DUP", "once", now())])
    acks = [await org.deliver(payload) for _ in range(3)]
    assert [a.status_code for a in acks] == [200, 200, 200]
    assert [a.json()["received"] for a in acks].count(1) == 1
    await eventually(lambda: _count(graph, USER, 2))
    await eventually(lambda: _all_sent(pool, org.id, 2))
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: once"]
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_inbox WHERE org_id = $1",
                               org.id) == 1
    turns = await pool.fetchval(
        "SELECT count(*) FROM session_events WHERE org_id = $1 AND type = 'user.turn'", org.id)
    assert turns == 1


async def test_a_bad_or_missing_signature_is_401_and_stores_nothing(wa_org, graph, pool):
    org = await wa_org()
    payload = notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.FORGED", "let me in", now())])
    forged = await org.deliver(payload, secret="not-the-app-secret")
    assert forged.status_code == 401 and "X-Hub-Signature-256" in forged.json()["message"]
    raw = json.dumps(payload).encode()
    unsigned = await org.webhook.post("/v1/channels/whatsapp/webhook", content=raw)
    assert unsigned.status_code == 401
    # Signed correctly, but the body changed after signing.
    tampered = await org.webhook.post(
        "/v1/channels/whatsapp/webhook", content=raw.replace(b"let me in", b"let me out"),
        headers={"X-Hub-Signature-256": sign(org.app_secret, raw)})
    assert tampered.status_code == 401
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_inbox WHERE org_id = $1",
                               org.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 0
    assert graph.sent == []


async def test_an_oversized_notification_is_413_and_stores_nothing(wa_org, graph, pool, settings):
    org = await wa_org()
    payload = notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.BIG", "x" * (settings.max_body_bytes + 10), now())])
    refused = await org.deliver(payload)
    assert refused.status_code == 413
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_inbox WHERE org_id = $1",
                               org.id) == 0
    assert graph.sent == []


async def test_out_of_order_timestamps_are_applied_in_timestamp_order(wa_org, make_wa_app,
                                                                      graph, pool):
    stopped = make_wa_app(worker=False)  # a replica that acknowledges but applies nothing
    org = await wa_org(stopped)
    t = now()
    for wamid, text, at in (("wamid.LATE", "second", t + 5), ("wamid.EARLY", "first", t)):
        ack = await org.deliver(notification(org.phone_number_id, messages=[
            text_message(USER, wamid, text, at)]))
        assert ack.status_code == 200
    assert graph.sent == []

    running = make_wa_app()
    async with running.router.lifespan_context(running):
        await eventually(lambda: _count(graph, USER, 3))
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: first", "Echo: second"]


async def test_stopped_between_ack_and_processing_then_restarted_answers_once(
        wa_org, make_wa_app, graph, pool):
    crashed = make_wa_app(worker=False)  # acknowledged, then "crashed" before processing
    org = await wa_org(crashed)
    ack = await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.CRASH", "are you there?", now())]))
    assert ack.status_code == 200 and ack.json()["received"] == 1
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_inbox WHERE org_id = $1"
                               " AND processed_at IS NULL", org.id) == 1
    assert graph.sent == []

    # Meta redelivers to the restarted replica too: still one turn.
    restarted = make_wa_app()
    async with restarted.router.lifespan_context(restarted):
        await eventually(lambda: _count(graph, USER, 2))
        redelivered = await org.deliver(
            notification(org.phone_number_id, messages=[
                text_message(USER, "wamid.CRASH", "are you there?", now())]),
            client=_anon(restarted))
        assert redelivered.json()["duplicates"] == 1
        await restarted.state.aico.whatsapp_worker.drain()
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: are you there?"]
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_inbox WHERE org_id = $1"
                               " AND processed_at IS NULL", org.id) == 0


async def test_graph_errors_retry_record_and_surface(wa_org, graph, pool):
    org = await wa_org()
    graph.fail_next(130429, times=2)  # rate limited twice, then accepted
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.RL", "busy?", now())]))
    await eventually(lambda: _count(graph, USER, 2))
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: busy?"]
    assert [r["code"] for r in graph.refused] == [130429, 130429]
    rows = await eventually(lambda: _all_sent(pool, org.id, 2))
    assert rows[0]["attempts"] == 3 and rows[1]["attempts"] == 1

    # Outside the 24-hour window: recorded on the conversation.
    graph.fail_next(131047)
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.WIN", "late", now())]))

    async def reengage():
        return await pool.fetchval("SELECT reengagement_required FROM whatsapp_conversations"
                                   " WHERE org_id = $1", org.id)
    await eventually(reengage)
    failed = [r for r in await outbox(pool, org.id) if r["status"] == "failed"]
    assert [(r["error_code"], r["body"]["text"]["body"]) for r in failed] == \
        [(131047, "Echo: late")]

    # An expired token: a clear error on the number, for the dashboard.
    graph.fail_next(190)
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.TOK", "token?", now())]))

    async def number_error():
        r = await org.api.get(f"/v1/channels/whatsapp/numbers/{org.number_id}")
        return r.json()["last_error"]
    error = await eventually(number_error)
    assert error["code"] == 190 and "meta_token" in error["message"]


async def test_interactive_replies_are_read_and_images_get_a_polite_answer(wa_org, graph):
    org = await wa_org()
    t = now()
    await org.deliver(notification(org.phone_number_id, messages=[
        {"from": USER, "id": "wamid.BTN", "timestamp": str(t), "type": "interactive",
         "interactive": {"type": "button_reply",
                         "button_reply": {"id": "opt-sales", "title": "Sales"}}},
        {"from": USER, "id": "wamid.IMG", "timestamp": str(t + 1), "type": "image",
         "image": {"id": "1479537139650973", "mime_type": "image/jpeg"}},
        {"from": USER, "id": "wamid.REACT", "timestamp": str(t + 2), "type": "reaction",
         "reaction": {"message_id": "wamid.OUT000001", "emoji": "👍"}}]))
    await eventually(lambda: _count(graph, USER, 3))
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: Sales",
                                    "Sorry, I can only read text and voice messages here."]


def _anon(app):
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aico.test")


async def _count(graph, user, n):
    return len(graph.texts_to(user)) >= n


async def _all_sent(pool, org_id, n):
    rows = await outbox(pool, org_id)
    return rows if len(rows) >= n and all(r["status"] != "pending" for r in rows) else None


async def test_a_long_reply_is_split_under_the_limit_and_idle_conversations_close(
        wa_org, make_wa_app, graph, pool):
    app = make_wa_app(inactivity_s=60)
    org = await wa_org(app)
    long_text = " ".join(["word"] * 1000)  # 4,999 characters: the echo cannot go in one message
    t = now()
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.LONG", long_text, t)]))
    await eventually(lambda: _count(graph, USER, 3))
    greeting, *parts = graph.texts_to(USER)
    assert greeting == "Hi! I echo." and len(parts) == 2
    assert all(len(p) <= 4096 for p in parts)
    assert " ".join(parts) == f"Echo: {long_text}"

    # Past the inactivity time (by Meta's timestamps) the next message starts a new session.
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.LATER", "back again", t + 120)]))
    await eventually(lambda: _count(graph, USER, 5))
    assert graph.texts_to(USER)[-2:] == ["Hi! I echo.", "Echo: back again"]
    conversations = await pool.fetch(
        "SELECT session_id, closed_at FROM whatsapp_conversations WHERE org_id = $1"
        " ORDER BY created_at", org.id)
    assert len(conversations) == 2 and conversations[0]["closed_at"] is not None
    assert conversations[1]["closed_at"] is None
    assert conversations[0]["session_id"] != conversations[1]["session_id"]


async def test_two_replicas_share_the_inbox_and_answer_each_message_once_in_order(
        wa_org, make_wa_app, graph, pool):
    first, second = make_wa_app(), make_wa_app()
    org = await wa_org(first)
    users = [f"44700000{i:04d}" for i in range(3)]
    t = now()
    async with first.router.lifespan_context(first), \
            second.router.lifespan_context(second):
        # Notifications alternate between the replicas; both workers claim from one inbox.
        for n in range(4):
            client = org.webhook if n % 2 == 0 else _anon(second)
            batch = [text_message(u, f"wamid.{u}.{n}", f"m{n}", t + n) for u in users]
            ack = await org.deliver(notification(org.phone_number_id, messages=batch[::-1]),
                                    client=client)
            assert ack.status_code == 200 and ack.json()["received"] == 3
        for u in users:
            await eventually(lambda u=u: _count(graph, u, 5))
        await eventually(lambda: _all_sent(pool, org.id, 15))
    for u in users:
        assert graph.texts_to(u) == ["Hi! I echo.", "Echo: m0", "Echo: m1", "Echo: m2",
                                     "Echo: m3"]
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 3


async def test_a_message_that_keeps_failing_is_given_up_and_later_ones_are_answered(
        wa_org, make_wa_app, graph, pool, monkeypatch):
    import flows.whatsapp_worker as worker_module

    real = worker_module.inbound_text

    def faulty(payload):  # fault injection: applying this one message fails every time
        if (payload.get("text") or {}).get("body") == "poison":
            raise RuntimeError("injected fault")
        return real(payload)

    monkeypatch.setattr(worker_module, "inbound_text", faulty)
    org = await wa_org(make_wa_app(send_attempts=3))
    t = now()
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.POISON", "poison", t),
        text_message(USER, "wamid.AFTER", "still there?", t + 1)]))
    await eventually(lambda: _count(graph, USER, 2))
    # The poison turn is never answered (nor its conversation kept); the next one is.
    assert graph.texts_to(USER) == ["Hi! I echo.", "Echo: still there?"]
    rows = {r["wamid"]: r for r in await pool.fetch(
        "SELECT wamid, attempts, outcome, processed_at FROM whatsapp_inbox WHERE org_id = $1",
        org.id)}
    assert rows["wamid.POISON"]["attempts"] == 2
    assert rows["wamid.POISON"]["outcome"] == "failed: RuntimeError"
    assert rows["wamid.AFTER"]["outcome"] == "applied"
