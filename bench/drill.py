"""Failure drill with several Ray nodes on this machine: calls spread over the call nodes; one
node is killed mid-call; its calls resume on another node and complete their flow; the calls on
the surviving node never notice; no committed event is lost or applied twice.

    .venv/bin/python bench/drill.py                  # 3 nodes: head (API) + 2 call nodes
    .venv/bin/python bench/drill.py --callers 4

It runs as its own process (`ray.cluster_utils.Cluster` starts its own GCS and raylets: it
cannot share a test run's Ray). The head node declares no `aico_calls`, so the API (in this
process) and the models (Serve) are on it and every call actor is on a call node. Prints one
JSON report: calls by node before the kill, which calls resumed, each session's status and end
reason, and per session the event ids seen twice (must be none) and whether every caller turn
was answered after the resume.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "voice")]

from voice_call_client import CallClient

QUESTION = "What are your hours?"
ANSWER = "We are open from nine to five."
BYE = "Goodbye."


def drill_flow() -> dict[str, Any]:
    """Greet, answer two questions, say goodbye and end: a call that completes its flow."""
    return {"name": "Drill", "variables": {"q": {"type": "string", "default": ""},
                                           "r": {"type": "string", "default": ""}},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "greet", "type": "say", "text": "Hello, bakery here."},
                      {"id": "listen1", "type": "listen", "into": "q"},
                      {"id": "answer1", "type": "say", "text": ANSWER},
                      {"id": "listen2", "type": "listen", "into": "r"},
                      {"id": "bye", "type": "say", "text": BYE},
                      {"id": "end", "type": "end", "reason": "flow_done"}],
            "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen1"},
                      {"from": "listen1", "to": "answer1"}, {"from": "answer1", "to": "listen2"},
                      {"from": "listen2", "to": "bye"}, {"from": "bye", "to": "end"}]}


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report: dict[str, Any] = {}

    async def setup(self) -> None:
        import ray
        import uvicorn
        from ray import serve
        from ray.cluster_utils import Cluster

        from actors.call_placement import CallPlacement
        from actors.host import RayVoiceHost
        from aico.settings import Settings, VoiceSettings
        from db.api_clients import insert_api_client, new_token
        from db.embedded import start_embedded_postgres
        from db.migrate import prepare_database
        from db.organizations import insert_organization
        from db.pool import create_pool
        from serve_apps.api import create_app
        from serve_apps.models import build_models_app

        self.home = Path(tempfile.mkdtemp(prefix="aico-drill-"))
        self.home.chmod(0o755)
        self.pg = start_embedded_postgres(self.home / "pg", delete_on_stop=True)
        await prepare_database(self.pg.dsn)
        self.pool = await create_pool(self.pg.dsn, min_size=2, max_size=10)
        env = {"AICO_HOME": str(self.home), "AICO_DATABASE_URL": self.pg.dsn,
               "AICO_MODELS": "serve", "AICO_OBSERVABILITY_METRICS_PUSH_S": "1"}
        os.environ.update(env)
        os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False})
        calls = {"aico_calls": 8.0}
        # No CPUs on call nodes: only zero-CPU actors land there (call actors, supervisors,
        # Serve's proxy), never a model replica, as on a cluster whose models need GPUs.
        self.call_nodes = [self.cluster.add_node(num_cpus=0, resources=calls)
                           for _ in range(self.args.call_nodes)]
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, runtime_env={"env_vars": env},
                 logging_level=logging.WARNING)
        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        from serve_apps.models.app import DeploymentResources, deployment_resources

        # Two STT replicas: the model-replica drill kills one mid-utterance.
        resources = {**deployment_resources(), "stt": DeploymentResources(min_replicas=2,
                                                                          max_replicas=2)}
        serve.run(build_models_app(providers={"stt": {"kind": "faster-whisper"},
                                              "tts": {"kind": "piper"},
                                              "llm": {"kind": "llamacpp"}},
                                   resources=resources),
                  name="models", route_prefix=None)
        org = await insert_organization(self.pool, slug="drill", name="drill")
        token = new_token()
        await insert_api_client(self.pool, org_id=org["id"], name="drill", token=token)
        voice = VoiceSettings(pool_size=1)
        self.placement = CallPlacement(voice)
        await self.placement.wait_warm(timeout_s=600)
        self.host = RayVoiceHost(self.placement, reattach_timeout_s=120)
        settings = Settings(home=self.home, database_url=self.pg.dsn)
        self.app = create_app(settings.model_copy(update={"voice": voice}), pool=self.pool,
                              voice_host=self.host)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off"))
        self.server_task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}",
                                      headers={"Authorization": f"Bearer {token}"}, timeout=120)
        doc = drill_flow()
        r = await self.http.post("/v1/flows", json={"name": doc["name"], "document": doc})
        self.flow_id = r.json()["id"]
        await self.http.post(f"/v1/flows/{self.flow_id}/publish")
        from actors.audio import resample_pcm16
        from providers.runtime import open_tts

        tts = await open_tts({"kind": "piper"}, secrets={})
        self.audio = {}
        for line in (QUESTION, "Thank you, bye."):
            chunks = [f.pcm16 async for f in tts.synthesize(line)]
            self.audio[line] = resample_pcm16(b"".join(chunks), tts.sample_rate, 16000)

    async def call(self, greeted: asyncio.Event, killed: asyncio.Event,
                   out: dict[str, Any]) -> None:
        r = await self.http.post(f"/v1/flows/{self.flow_id}/sessions", json={"channel": "voice"})
        body = r.json()
        out["session_id"] = body["id"]
        path = body["voice"]["url"].split("/v1/", 1)[1]
        async with CallClient(f"ws://127.0.0.1:{self.port}/v1/{path}") as call:
            await call.wait_event("agent_speech_ended", timeout=120)
            spoke = await call.say(self.audio[QUESTION])
            await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
            greeted.set()
            await killed.wait()
            t_kill = time.monotonic()
            # A caller whose call is moving hears a short resume, then speaks again; the
            # others speak on at once (their calls must not notice).
            if out.get("on_killed_node"):
                await call.wait_event("resumed", after=t_kill, timeout=180)
                out["resumed_after_s"] = round(time.monotonic() - t_kill, 2)
            spoke = await call.say(self.audio["Thank you, bye."])
            try:
                await call.wait_event("end", after=spoke, timeout=120)
                out["ended_by_flow"] = True
            except AssertionError:
                out["ended_by_flow"] = False
            out["resumed"] = any(e.get("type") == "resumed" for _, e in call.events)
            out["agent_lines"] = [e["text"] for _, e in call.events
                                  if e.get("type") == "transcript" and e.get("role") == "agent"
                                  and e.get("final")]

    async def run(self) -> None:
        import ray

        n = self.args.callers
        greeted = [asyncio.Event() for _ in range(n)]
        killed = asyncio.Event()
        outs: list[dict[str, Any]] = [{} for _ in range(n)]
        tasks = [asyncio.create_task(self.call(greeted[i], killed, outs[i])) for i in range(n)]
        await asyncio.wait_for(asyncio.gather(*(g.wait() for g in greeted)), 300)
        node_of: dict[str, str] = {}
        for call_sid, rc in self.host.calls.items():
            node_of[call_sid] = await rc.actor.node_id.remote()
        self.report["calls_by_node_before"] = Counter(node_of.values())
        # A call node that carries calls (placement spread them; take the first such node).
        victim = next((nd for nd in self.call_nodes if nd.node_id[:12] in node_of.values()),
                      self.call_nodes[0])
        victim_id = victim.node_id[:12]
        self.report["killed_node"] = victim_id
        for out in outs:
            out["on_killed_node"] = node_of.get(out.get("session_id", "")) == victim_id
        t_kill = time.monotonic()
        self.cluster.remove_node(victim, allow_graceful=False)
        killed.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        self.report["drill_s"] = round(time.monotonic() - t_kill, 1)
        sessions = []
        for out, result in zip(outs, results, strict=True):
            sid: str | None = out.get("session_id")
            record = (await self.http.get(f"/v1/sessions/{sid}")).json() if sid else {}
            events = (await self.http.get(f"/v1/sessions/{sid}/events")).json()["items"] \
                if sid else []
            ids = Counter(e.get("event_id") or e.get("id") for e in events)
            sessions.append({
                "session": sid, "node": node_of.get(sid or "", "?"),
                "on_killed_node": node_of.get(sid or "") == victim_id,
                "resumed": out.get("resumed"), "resumed_after_s": out.get("resumed_after_s"),
                "ended_by_flow": out.get("ended_by_flow"),
                "status": record.get("status"),
                "user_turns": sum(1 for e in events if e["type"] == "user.turn"),
                "events_seen_twice": [k for k, c in ids.items() if c > 1],
                "agent_lines": out.get("agent_lines"),
                "error": repr(result)[:300] if isinstance(result, BaseException) else None})
        self.report["sessions"] = sessions
        self.report["calls_by_node_after"] = Counter(
            [await rc.actor.node_id.remote() for rc in self.host.calls.values()])
        self.report["nodes_alive"] = sum(1 for nd in ray.nodes() if nd["Alive"])
        print(json.dumps(self.report, indent=1, default=str), flush=True)

    async def kill_model_replica(self) -> None:
        """One STT replica is killed while a caller speaks: the turn is still answered (the
        failed requests are retried on the other replica)."""
        import ray

        from actors.metrics_hub import cluster_snapshot

        def provider_errors(snapshot: dict[str, Any]) -> float:
            return sum(snapshot.get("aico_provider_errors", {}).values())

        errors_before = provider_errors(await cluster_snapshot())
        r = await self.http.post(f"/v1/flows/{self.flow_id}/sessions", json={"channel": "voice"})
        body = r.json()
        path = body["voice"]["url"].split("/v1/", 1)[1]
        out: dict[str, Any] = {"session": body["id"]}
        async with CallClient(f"ws://127.0.0.1:{self.port}/v1/{path}") as call:
            await call.wait_event("agent_speech_ended", timeout=120)
            replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                        if "#stt#" in a["name"]]
            out["stt_replicas"] = len(replicas)
            speaking = asyncio.create_task(call.say(self.audio[QUESTION]))
            await asyncio.sleep(1.0)  # mid-utterance: the pipeline decodes while it is spoken
            victim = ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"])
            ray.kill(victim, no_restart=True)
            spoke = await speaking
            try:
                await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
            except AssertionError:
                pass
            out["answer_after_kill"] = [
                e["text"] for t, e in call.events if t >= spoke and e.get("type") == "transcript"
                and e.get("role") == "agent" and e.get("final")]
            out["heard"] = [e["text"] for _, e in call.events if e.get("type") == "transcript"
                            and e.get("role") == "user" and e.get("final")]
        await asyncio.sleep(2.5)  # the actor's last metrics push
        out["provider_errors_retried"] = provider_errors(await cluster_snapshot()) - errors_before
        out["turn_answered"] = out["answer_after_kill"][:1] == [ANSWER]
        self.report["model_replica_killed"] = out
        print(json.dumps({"model_replica_killed": out}, indent=1), flush=True)

    async def close(self) -> None:
        import ray

        self.server.should_exit = True
        await self.server_task
        await self.http.aclose()
        await self.pool.close()
        ray.shutdown()
        self.cluster.shutdown()
        self.pg.stop()


async def main_async(args: argparse.Namespace) -> None:
    drill = Drill(args)
    await drill.setup()
    try:
        await drill.run()
        await drill.kill_model_replica()
    finally:
        await drill.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=2)
    parser.add_argument("--call-nodes", type=int, default=2)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
