"""Event webhooks: an integrator registers a loopback receiver, runs a chat session, and gets
session.started, turn.completed, transfer.requested and session.ended, each once, signed per the
Standard Webhooks spec (verified with the `standardwebhooks` library); a receiver that fails
twice gets the event on the third try; a private address is refused at registration."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from webhook_receiver import WebhookReceiver

from aico.settings import LimitSettings, Settings
from flows.webhook_outbox import WebhookOutbox

TRANSFER = {
    "name": "Transfer",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "hear", "type": "listen", "into": "said"},
              {"id": "echo", "type": "say", "text": "You said {{ said }}"},
              {"id": "xfer", "type": "transfer", "to": "+15550100"}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "echo"},
              {"from": "echo", "to": "xfer"}],
}
ALL_EVENTS = ["session.started", "turn.completed", "transfer.requested", "session.ended"]


@pytest.fixture
async def outbox(settings: Settings, app_pool: asyncpg.Pool
                 ) -> AsyncIterator[Callable[..., WebhookOutbox]]:
    """`outbox(**limits)`: the delivery worker, running, as an API replica runs it."""
    started: list[WebhookOutbox] = []

    def start(**limits: Any) -> WebhookOutbox:
        worker = WebhookOutbox(app_pool, settings.model_copy(
            update={"limits": LimitSettings(**limits)}))
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop()


@pytest.fixture
def receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make(**options: int) -> WebhookReceiver:
        made.append(WebhookReceiver(**options))
        return made[-1]

    yield make
    for r in made:
        r.close()


async def _publish(client, document) -> str:
    created = await client.post("/v1/flows", json={"name": document["name"],
                                                   "document": document})
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    assert (await client.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    return flow_id


async def _register(client, url: str, events: list[str]) -> dict:
    allowed = await client.put("/v1/org/egress-allowlist", json={"hosts": ["127.0.0.1"]})
    assert allowed.status_code == 200, allowed.text
    made = await client.post("/v1/webhooks", json={"url": url, "events": events})
    assert made.status_code == 201, made.text
    return made.json()


async def test_every_session_event_reaches_the_receiver_once_signed(
        make_org, pool, outbox, receiver):
    org = await make_org()
    hook_receiver = receiver()
    hook = await _register(org.client, hook_receiver.url, ALL_EVENTS)
    assert hook["secret"].startswith("whsec_")
    stored = await pool.fetchrow("SELECT secret_ciphertext FROM webhooks WHERE id = $1",
                                 hook["id"])
    assert hook["secret"].encode() not in bytes(stored["secret_ciphertext"])  # sealed
    listed = await org.client.get("/v1/webhooks")
    assert hook["secret"] not in listed.text and listed.json()["items"][0]["id"] == hook["id"]
    outbox()

    flow_id = await _publish(org.client, TRANSFER)
    session = (await org.client.post(f"/v1/flows/{flow_id}/sessions", json={})).json()
    reply = await org.client.post(f"/v1/sessions/{session['id']}/messages", json={"text": "hi"})
    assert reply.json()["status"] == "ended"

    got = await hook_receiver.wait_for(lambda r: len(r) >= 4)
    verifier = Webhook(hook["secret"])
    events = [verifier.verify(r.body, r.headers) for r in got]  # raises on a bad signature
    assert sorted(e["type"] for e in events) == sorted(ALL_EVENTS)
    by_type = {e["type"]: e["data"] for e in events}
    assert all(d["session_id"] == session["id"] for d in by_type.values())
    assert by_type["session.started"]["flow_id"] == flow_id
    assert by_type["turn.completed"]["user_text"] == "hi"
    assert by_type["turn.completed"]["agent_text"] == "You said hi"
    assert by_type["transfer.requested"]["to"] == "+15550100"
    assert by_type["session.ended"]["status"] == "ended"
    assert len({r.headers["webhook-id"] for r in got}) == 4
    # A wrong secret does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(got[0].body, got[0].headers)

    deliveries = (await org.client.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()["items"]
    assert sorted(d["event"] for d in deliveries) == sorted(ALL_EVENTS)
    for d in deliveries:
        assert d["status"] == "delivered" and len(d["attempts"]) == 1
        assert d["attempts"][0]["status_code"] == 204 and d["attempts"][0]["latency_ms"] > 0
        assert d["delivery_latency_ms"] > 0
    # Nothing more arrives: each event once.
    assert await outbox().deliver_due() == 0
    assert len(hook_receiver.received) == 4

    # Redeliver: the same message (same webhook-id) again, logged as a second attempt.
    first = deliveries[0]
    again = await org.client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver")
    assert again.status_code == 202
    got = await hook_receiver.wait_for(lambda r: len(r) >= 5)
    assert got[4].headers["webhook-id"] == f"msg_{first['id']}"
    deliveries = (await org.client.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()["items"]
    assert len(next(d for d in deliveries if d["id"] == first["id"])["attempts"]) == 2


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_try(
        make_org, pool, outbox, receiver):
    org = await make_org()
    flaky = receiver(fail_first=2)
    hook = await _register(org.client, flaky.url, ["session.started"])
    outbox(webhook_retry_base_s=0.2, webhook_poll_s=0.1)
    flow_id = await _publish(org.client, TRANSFER)
    session = (await org.client.post(f"/v1/flows/{flow_id}/sessions", json={})).json()

    got = await flaky.wait_for(lambda r: len(r) >= 3)
    assert [r.status for r in got] == [500, 500, 204]
    assert len({r.headers["webhook-id"] for r in got}) == 1  # one message, retried
    assert json.loads(got[2].body)["data"]["session_id"] == session["id"]
    Webhook(hook["secret"]).verify(got[2].body, got[2].headers)
    (delivery,) = (await org.client.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()["items"]
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]


async def test_a_delivery_still_failing_after_its_window_is_failed(
        make_org, pool, outbox, receiver):
    org = await make_org()
    down = receiver(fail_first=1000)
    hook = await _register(org.client, down.url, ["session.started"])
    outbox(webhook_retry_base_s=0.1, webhook_poll_s=0.1, webhook_give_up_after_s=0.5)
    flow_id = await _publish(org.client, TRANSFER)
    await org.client.post(f"/v1/flows/{flow_id}/sessions", json={})
    row = await _wait_for_status(pool, hook["id"], "failed")
    assert row["attempts"] >= 2
    assert len(down.received) == row["attempts"]  # every attempt reached it, then none more
    assert await outbox().deliver_due() == 0


async def _wait_for_status(pool, webhook_id: str, status: str, *,
                           timeout_s: float = 30.0) -> asyncpg.Record:
    deadline = time.monotonic() + timeout_s
    while True:
        row = await pool.fetchrow(
            "SELECT status, attempts FROM webhook_deliveries WHERE webhook_id = $1", webhook_id)
        if row is not None and row["status"] == status:
            return row
        assert time.monotonic() < deadline, f"delivery never became {status}: {row}"
        await asyncio.sleep(0.05)


async def test_a_private_address_is_refused_at_registration(make_org, pool):
    org = await make_org()
    for url in ("http://10.0.0.5/hook", "http://127.0.0.1:9/hook", "http://169.254.169.254/"):
        refused = await org.client.post("/v1/webhooks", json={"url": url,
                                                               "events": ["session.started"]})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "egress_refused"
    bad = await org.client.post("/v1/webhooks", json={"url": "ftp://example.com/x",
                                                      "events": ["session.started"]})
    assert bad.status_code == 422 and "url" in bad.json()["message"]
    unknown = await org.client.post("/v1/webhooks", json={"url": "https://example.com/x",
                                                          "events": ["session.exploded"]})
    assert unknown.status_code == 422 and "session.exploded" in unknown.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM webhooks WHERE org_id = $1", org.id) == 0


async def test_old_deliveries_and_expired_idempotency_keys_are_pruned(
        make_org, pool, outbox, receiver):
    org = await make_org()
    hook_receiver = receiver()
    hook = await _register(org.client, hook_receiver.url, ["session.started"])
    flow_id = await _publish(org.client, TRANSFER)
    for key in ("old", "new"):
        started = await org.client.post(f"/v1/flows/{flow_id}/sessions", json={},
                                        headers={"Idempotency-Key": key})
        assert started.status_code == 201
    worker = outbox()
    await hook_receiver.wait_for(lambda r: len(r) >= 2)
    await _wait_for_status(pool, hook["id"], "delivered")
    old_session = await pool.fetchval(
        "SELECT session_id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY event_at"
        " LIMIT 1", hook["id"])
    await pool.execute("UPDATE webhook_deliveries SET event_at = now() - interval '31 days'"
                       " WHERE webhook_id = $1 AND session_id = $2", hook["id"], old_session)
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                       " WHERE org_id = $1 AND key = 'old'", org.id)
    await worker.stop()
    outbox()  # a replica (re)starting prunes on its first pass

    deadline = time.monotonic() + 30
    while await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE org_id = $1",
                              org.id) != 1:
        assert time.monotonic() < deadline, "the expired key was never pruned"
        await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT key FROM idempotency_keys WHERE org_id = $1",
                               org.id) == "new"
    deliveries = (await org.client.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()["items"]
    assert len(deliveries) == 1 and deliveries[0]["session_id"] != str(old_session)


async def test_another_organization_sees_no_webhook_or_delivery(make_org, pool):
    org = await make_org()
    hook = await _register(org.client, "http://127.0.0.1:9/hook", ["session.started"])
    other = await make_org()
    assert (await other.client.get("/v1/webhooks")).json()["items"] == []
    assert (await other.client.get(f"/v1/webhooks/{hook['id']}/deliveries")).status_code == 404
    assert (await other.client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 404
    editor = await make_org(role="editor")
    assert (await editor.client.get("/v1/webhooks")).status_code == 403
    assert (await org.client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM webhooks WHERE org_id = $1", org.id) == 0
