"""Webhook delivery latency: from the event's commit to the receiver, through the real API
(uvicorn with its lifespan, so the outbox worker runs as in a replica), the embedded
PostgreSQL, the NOTIFY wake-up, the egress guard and a loopback receiver.

    .venv/bin/python bench/webhook_latency.py [--turns 50]

Each turn posts a chat message to an echo flow; the step's commit queues `turn.completed`.
Printed, p50/p95 over the measured turns (5 warm-up turns first):
- event -> received: the receiver's arrival time minus the outbox row's `event_at`
  (clock_timestamp() in the committing statement, so an upper bound on from-commit latency
  by the few microseconds between that statement and COMMIT);
- response -> received: arrival minus the moment the API's reply reached the client (the
  commit happened before that reply; negative: the webhook arrived before the caller had its
  own answer).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integrations"))

import httpx
import uvicorn
from webhook_receiver import Received, WebhookReceiver

from aico.settings import LimitSettings, Settings
from db.api_clients import insert_api_client, new_token
from db.embedded import start_embedded_postgres
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_app_pool, create_pool

ECHO = {
    "name": "Echo",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "hear", "type": "listen", "into": "said"},
              {"id": "echo", "type": "say", "text": "You said {{ said }}"}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "echo"},
              {"from": "echo", "to": "hear"}],
}


def _more_than(n: int, received: list[Received]) -> bool:
    return len(received) > n


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(turns: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="aico-bench-webhooks-"))
    pg = start_embedded_postgres(home / "pg", delete_on_stop=True)
    receiver = WebhookReceiver()
    try:
        await prepare_database(pg.dsn)
        # Turns back to back: lift the per-session message limit (60 a minute by default).
        settings = Settings(home=home, database_url=pg.dsn, limits=LimitSettings(
            messages_per_minute_per_session=100_000))
        owner = await create_pool(pg.dsn)
        app_pool = await create_app_pool(settings, min_size=2, max_size=10)
        from serve_apps.api import create_app

        app = create_app(settings, pool=app_pool)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.05)

        org = await insert_organization(owner, slug="bench-wh", name="bench-wh")
        token = new_token()
        await insert_api_client(owner, org_id=org["id"], name="bench", token=token, role="admin")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            flow_id = (await api.post("/v1/flows", json={"name": "e", "document": ECHO})).json()["id"]
            await api.post(f"/v1/flows/{flow_id}/publish")
            await api.put("/v1/org/egress-allowlist", json={"hosts": ["127.0.0.1"]})
            hook = (await api.post("/v1/webhooks", json={
                "url": receiver.url, "events": ["turn.completed"]})).json()
            session_id = (await api.post(f"/v1/flows/{flow_id}/sessions", json={})).json()["id"]

            after_response: list[float] = []
            for i in range(turns + 5):
                before = len(receiver.received)
                reply = await api.post(f"/v1/sessions/{session_id}/messages",
                                       json={"text": f"turn {i}"})
                answered = time.time()
                assert reply.status_code == 200, reply.text
                got = await receiver.wait_for(partial(_more_than, before), timeout_s=60)
                if i >= 5:
                    after_response.append((got[before].at - answered) * 1000)
            rows = await owner.fetch(
                "SELECT payload->'data'->>'seq' AS seq, extract(epoch FROM event_at) AS at"
                " FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY event_at", hook["id"])
            event_at = [float(r["at"]) for r in rows]
            from_event = [(r.at - e) * 1000 for r, e in zip(receiver.received, event_at,
                                                              strict=True)][5:]
        server.should_exit = True
        await serving
        await app_pool.close()
        await owner.close()
        print(f"turns measured: {len(from_event)}")
        print(f"event -> received    p50 {statistics.median(from_event):.1f} ms"
              f"  p95 {_pct(from_event, 0.95):.1f} ms")
        print(f"response -> received p50 {statistics.median(after_response):.1f} ms"
              f"  p95 {_pct(after_response, 0.95):.1f} ms")
    finally:
        receiver.close()
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=50)
    asyncio.run(main(parser.parse_args().turns))
