"""An integration starts a WhatsApp conversation with a template; free text is refused outside
the 24-hour customer-service window (a clear error, nothing stored or sent) and sent inside it."""

from __future__ import annotations

import time

from graph_standin import eventually, notification, text_message

USER = "5511999990000"
TEMPLATE = {"name": "appointment_reminder", "language": {"code": "en_US"},
            "components": [{"type": "body",
                            "parameters": [{"type": "text", "text": "Tuesday 10:00"}]}]}


async def test_a_template_starts_a_conversation_and_free_text_waits_for_the_window(
        wa_org, graph, pool, make_org):
    org = await wa_org()

    refused = await org.api.post("/v1/channels/whatsapp/messages", json={
        "number_id": org.number_id, "to": USER, "text": "Hello out of the blue"})
    assert refused.status_code == 409
    assert "24-hour" in refused.json()["message"] and "template" in refused.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_outbox WHERE org_id = $1",
                               org.id) == 0

    sent = await org.api.post("/v1/channels/whatsapp/messages", json={
        "number_id": org.number_id, "to": USER, "template": TEMPLATE})
    assert sent.status_code == 202, sent.text
    await eventually(lambda: _sent_to(graph, USER, 1))
    payload = graph.sent[-1]["payload"]
    assert payload["type"] == "template" and payload["template"] == TEMPLATE
    row = await pool.fetchrow("SELECT status, wamid FROM whatsapp_outbox WHERE id = $1",
                              sent.json()["id"])
    assert row["wamid"] == graph.sent[-1]["id"]

    # The user answers: now free text may follow, inside the window.
    await org.deliver(notification(org.phone_number_id, messages=[
        text_message(USER, "wamid.REPLY", "yes, confirmed", int(time.time()))]))
    await eventually(lambda: _sent_to(graph, USER, 3))  # the flow greets and echoes
    inside = await org.api.post("/v1/channels/whatsapp/messages", json={
        "number_id": org.number_id, "to": USER, "text": "See you *Tuesday*"})
    assert inside.status_code == 202
    await eventually(lambda: _sent_to(graph, USER, 4))
    assert graph.texts_to(USER)[-1] == "See you *Tuesday*"

    # Neither both nor none; a number of another organization is not found.
    both = await org.api.post("/v1/channels/whatsapp/messages", json={
        "number_id": org.number_id, "to": USER, "text": "x", "template": TEMPLATE})
    assert both.status_code == 422
    other = await make_org(role="editor")
    assert (await other.client.post("/v1/channels/whatsapp/messages", json={
        "number_id": org.number_id, "to": USER, "template": TEMPLATE})).status_code == 404
    viewer = await make_org(role="viewer")
    assert (await viewer.client.post("/v1/channels/whatsapp/messages", json={
        "number_id": org.number_id, "to": USER, "template": TEMPLATE})).status_code == 403


async def _sent_to(graph, user, n):
    return len([m for m in graph.sent if m["payload"].get("to") == user]) >= n
