"""WhatsApp channel benchmark: webhook acknowledgement p50/p95 and inbound text -> reply sent
p50/p95, over real HTTP (uvicorn on 127.0.0.1) against the embedded PostgreSQL, with the Graph
API stand-in of the tests on loopback and a deterministic echo flow (no model time).

    .venv/bin/python bench/whatsapp.py [--turns 100] [--voice-turns 10]

- ack: from sending a signed notification (one text message) to its 200, while the worker of
  the same replica applies earlier messages (as in production);
- reply: from sending the notification to the stand-in receiving the echo of that message
  (verify, store, ack, claim, step, outbox, Graph send), one message at a time;
- voice: the same for a voice note (a Piper-spoken sentence, OGG/Opus): media URL and download
  from the stand-in, PyAV decode, the packaged Whisper (in-process), step, send.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "whatsapp"))

import httpx
import uvicorn
from graph_standin import GraphStandIn, notification, sign, text_message

from aico.settings import Settings, WhatsAppSettings
from db.api_clients import insert_api_client, new_token
from db.embedded import start_embedded_postgres
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_app_pool, create_pool

ECHO = {"name": "bench-wa",
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "hear", "type": "listen", "into": "text"},
                  {"id": "echo", "type": "say", "text": "Echo: {{ text }}"}],
        "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "echo"},
                  {"from": "echo", "to": "hear"}]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TimedGraph(GraphStandIn):
    """The stand-in, noting when each echo arrived."""

    def __init__(self, token: str) -> None:
        super().__init__(token=token)
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()

    def _answer(self, path: str, authorization: str | None,
                payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = super()._answer(path, authorization, payload)
        with self.cond:
            self.arrived[payload.get("text", {}).get("body", "")] = time.perf_counter()
            self.cond.notify_all()
        return answer


def _echo_after(graph: TimedGraph, t0: float) -> float:
    """When the latest reply arrived, if it arrived after `t0` (0.0: none yet)."""
    latest = max(graph.arrived.values(), default=0.0)
    return latest if latest > t0 else 0.0


async def main(turns: int, voice_turns: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="aico-bench-wa-"))
    pg = start_embedded_postgres(home / "pg", delete_on_stop=True)
    try:
        await prepare_database(pg.dsn)
        graph = TimedGraph(token="EAAG-bench")
        settings = Settings(home=home, database_url=pg.dsn, whatsapp=WhatsAppSettings(
            graph_url=graph.url, worker=True, poll_s=1.0))
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

        org = await insert_organization(owner, slug="bench-wa", name="bench-wa")
        token = new_token()
        await insert_api_client(owner, org_id=org["id"], name="bench", token=token, role="admin")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            flow_id = (await api.post("/v1/flows", json={"name": "w", "document": ECHO})).json()["id"]
            await api.post(f"/v1/flows/{flow_id}/publish")
            app_secret = secrets.token_hex(16)
            await api.put("/v1/secrets/meta_app_secret", json={"value": app_secret})
            await api.put("/v1/secrets/meta_token", json={"value": graph.token})
            phone = "106540352242922"
            r = await api.post("/v1/channels/whatsapp/numbers", json={
                "phone_number_id": phone, "display_number": "+1 555", "flow_id": flow_id,
                "verify_token": "verify-bench-token", "app_secret_secret": "meta_app_secret",
                "access_token_secret": "meta_token"})
            assert r.status_code == 201, r.text

            async def deliver(i: int, text: str) -> float:
                raw = json.dumps(notification(phone, messages=[
                    text_message("4915100000000", f"wamid.B{i}", text, int(time.time()))])).encode()
                t0 = time.perf_counter()
                ack = await api.post("/v1/channels/whatsapp/webhook", content=raw,
                                     headers={"X-Hub-Signature-256": sign(app_secret, raw)})
                assert ack.status_code == 200, ack.text
                return t0

            async def deliver_voice(i: int, media_id: str) -> float:
                raw = json.dumps(notification(phone, messages=[{
                    "from": "4915100000001", "id": f"wamid.V{i}",
                    "timestamp": str(int(time.time())), "type": "audio",
                    "audio": {"id": media_id, "mime_type": "audio/ogg; codecs=opus",
                              "voice": True}}])).encode()
                t0 = time.perf_counter()
                ack = await api.post("/v1/channels/whatsapp/webhook", content=raw,
                                     headers={"X-Hub-Signature-256": sign(app_secret, raw)})
                assert ack.status_code == 200, ack.text
                return t0

            acks: list[float] = []
            replies: list[float] = []
            for i in range(turns + 5):  # 5 warm-up turns
                text = f"turn {i}"
                t0 = await deliver(i, text)
                acked = time.perf_counter()

                def arrived(text: str = text) -> bool:
                    return f"Echo: {text}" in graph.arrived

                while not arrived():
                    await asyncio.sleep(0.001)
                if i >= 5:
                    acks.append((acked - t0) * 1000)
                    replies.append((graph.arrived[f"Echo: {text}"] - t0) * 1000)
            voice: list[float] = []
            if voice_turns:
                from flows.sessions import default_configs
                from flows.whatsapp_media import encode_voice_note
                from providers.runtime import open_tts

                tts = await open_tts(default_configs()["tts"], secrets={})
                frames = [f async for f in tts.synthesize("What time do you open tomorrow?")]
                note = encode_voice_note(b"".join(f.pcm16 for f in frames), frames[0].sample_rate)
                for i in range(voice_turns + 1):  # the first loads Whisper
                    t0 = await deliver_voice(i, graph.add_media(note, "audio/ogg; codecs=opus"))
                    while not _echo_after(graph, t0):
                        await asyncio.sleep(0.002)
                    if i >= 1:
                        voice.append((_echo_after(graph, t0) - t0) * 1000)
        print(f"turns={turns} voice_turns={voice_turns}")
        print(f"webhook ack       p50 {statistics.median(acks):6.1f} ms  p95 {pct(acks, .95):6.1f} ms")
        print(f"text -> reply sent p50 {statistics.median(replies):6.1f} ms"
              f"  p95 {pct(replies, .95):6.1f} ms")
        if voice:
            print(f"voice note -> reply sent p50 {statistics.median(voice):6.1f} ms"
                  f"  p95 {pct(voice, .95):6.1f} ms")
        server.should_exit = True
        await serving
        await app_pool.close()
        await owner.close()
        graph.close()
    finally:
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--voice-turns", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.voice_turns))
