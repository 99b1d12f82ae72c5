"""Failure drills with several Ray nodes on this machine (issue 16), three in one cluster:

1. **The API node dies.** The API (the Serve `api` deployment) runs on a node of its own; calls
   run on two call nodes. That node is killed mid-call: every caller's socket drops, each one
   reconnects (a fresh token, `start` again, as docs/voice-protocol.md says) through the API
   replica Serve brings back on another node, gets the same actor back and finishes its flow.
   One more caller walks away when its socket drops: its session is closed with a reason by
   its node's supervisor (`transport_lost`) within `orphan_after_s` + a reaper round.
2. **A call node dies.** Its calls move to new actors on the surviving node, rehydrate from
   PostgreSQL, say `resumed`, and answer the caller's next turn; the calls elsewhere never
   notice.
3. **A model replica dies** (one of two STT replicas) while a caller speaks: the turn is
   answered.

Each drill asserts from `session_events` that no committed event is there twice and counts the
caller turns stored per call (every caller turn answered: 2 per call).

    .venv/bin/python bench/drill.py                  # 3 callers per drill
    .venv/bin/python bench/drill.py --callers 4

It runs as its own process (`ray.cluster_utils.Cluster` starts its own GCS and raylets: it
cannot share a test run's Ray), on the stack of bench/cluster_setup.py. Nodes: the head (2 CPUs:
the models and Serve's proxy and controller), the API node (`aico_api`, no CPUs), two call
nodes (`aico_calls`, no CPUs: only call actors and supervisors land there) added once the API
replica is placed; one of them also declares `aico_api`, so Serve has somewhere to bring the API
back. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "voice")]

from cluster_setup import BenchStack, NodeSpec
from voice_call_client import CallClient

QUESTION = "What are your hours?"
ANSWER = "We are open from nine to five."
THANKS = "Thank you, bye."
BYE = "Goodbye."
# A drill's callers are silent for as long as the API is away (tens of seconds): the flow's
# no-input timer (it counts while no transport feeds the call) and the supervisors' orphan
# reaper must not end a call a reconnect will pick up.
NO_INPUT_S = 120
ORPHAN_AFTER_S = 60.0
API_RESOURCE = "aico_api"


def drill_flow() -> dict[str, Any]:
    """Greet, answer two turns, say goodbye and end: a call that completes its flow."""
    return {"name": "Drill", "variables": {"q": {"type": "string", "default": ""},
                                           "r": {"type": "string", "default": ""},
                                           "voice_no_input_s": {"type": "number",
                                                                "default": NO_INPUT_S}},
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


@dataclass(frozen=True)
class DrillNode(NodeSpec):
    api: bool = False  # declares `aico_api`: the API replica may run here

    def resources(self) -> dict[str, float]:
        return {**super().resources(), **({API_RESOURCE: 1.0} if self.api else {})}


class DrillStack(BenchStack):
    """BenchStack with the API on Serve, pinned to the API node, reached through the proxy."""

    call_nodes: list[Any]
    standby: Any

    async def start_api(self, voice: Any, *, reattach_timeout_s: float | None) -> None:
        import ray
        from ray import serve

        from actors.call_placement import CallPlacement
        from cli.serve_port import serve_http_port
        from db.api_clients import insert_api_client, new_token
        from db.organizations import insert_organization
        from serve_apps.app import Api

        org = await insert_organization(self.pool, slug="drill", name="drill")
        self.token = new_token()
        await insert_api_client(self.pool, org_id=org["id"], name="drill", token=self.token)
        env = {k: v for k, v in os.environ.items() if k.startswith("AICO_")}
        env.update({"AICO_VOICE_POOL_SIZE": str(voice.pool_size),
                    "AICO_VOICE_ORPHAN_AFTER_S": str(voice.orphan_after_s)})
        serve.run(Api.options(num_replicas=1, ray_actor_options={  # type: ignore[attr-defined]
            "num_cpus": 0, "resources": {API_RESOURCE: 1},
            "runtime_env": {"env_vars": env}}).bind(), name="api", route_prefix="/")
        self.port = await asyncio.to_thread(serve_http_port)
        # Call nodes only now: the API replica is on the API node, and the call node that also
        # declares `aico_api` is where Serve brings it back.
        assert self.ray_cluster is not None
        self.standby = self.ray_cluster.add_node(num_cpus=0, resources=DrillNode(
            num_cpus=0, calls=8, api=True).resources())
        other = self.ray_cluster.add_node(num_cpus=0, resources=NodeSpec(
            num_cpus=0, calls=8).resources())
        self.call_nodes = [self.standby, other]
        self.ray_cluster.wait_for_nodes()
        self.placement = CallPlacement(voice)
        self.warm_by_node = await self.placement.wait_warm(timeout_s=600)
        self.host = None
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}",
                                      headers={"Authorization": f"Bearer {self.token}"},
                                      timeout=30)
        self.api_node_id = next(n["NodeID"] for n in ray.nodes()
                                if n["Alive"] and n["Resources"].get(API_RESOURCE)
                                and not n["Resources"].get("aico_calls"))

    async def close(self) -> None:
        import ray

        await self.http.aclose()
        await self.pool.close()
        ray.shutdown()
        if self.ray_cluster is not None:
            self.ray_cluster.shutdown()
        self.pg.stop()


async def api_call(http: httpx.AsyncClient, method: str, url: str, *, timeout_s: float = 120,
                   **kw: Any) -> httpx.Response:
    """A request through the proxy, retried while the API is away (the drill kills it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            r = await http.request(method, url, **kw)
            if r.status_code < 500:
                return r
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{method} {url}: the API did not answer in {timeout_s} s")
        await asyncio.sleep(1.0)


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        from aico.settings import VoiceSettings

        self.args = args
        # Two warm actors per call node: the drill's callers start at once, and cold actors
        # warming up on this 2-core machine would take their CPU.
        self.voice = VoiceSettings(pool_size=2, orphan_after_s=ORPHAN_AFTER_S)
        self.stack = DrillStack(prefix="aico-drill-", cluster=True, nodes=[
            DrillNode(num_cpus=2), DrillNode(num_cpus=0, api=True)],
            # Two STT replicas: the model-replica drill kills one mid-utterance.
            resources=None)
        self.report: dict[str, Any] = {}

    async def setup(self) -> None:
        from serve_apps.models.app import DeploymentResources, deployment_resources

        self.stack.resources = {**deployment_resources(),
                                "stt": DeploymentResources(min_replicas=2, max_replicas=2)}
        await self.stack.start(flow=drill_flow(), voice=self.voice)
        self.audio = await self.stack.caller_audio(QUESTION, THANKS)

    def ws_url(self, voice: dict[str, Any]) -> str:
        path = voice["url"].split("/v1/", 1)[1]
        return f"ws://127.0.0.1:{self.stack.port}/v1/{path}"

    async def new_session(self) -> tuple[str, str]:
        r = await api_call(self.stack.http, "POST", f"/v1/flows/{self.stack.flow_id}/sessions",
                           json={"channel": "voice"})
        r.raise_for_status()
        body = r.json()
        return body["id"], self.ws_url(body["voice"])

    async def node_of(self, session_id: str) -> str:
        actor = await self.stack.placement.find(session_id)
        return await actor.node_id.remote() if actor is not None else "?"

    async def call(self, sid: str, url: str, answered: asyncio.Event, killed: asyncio.Event,
                   out: dict[str, Any], *, reconnect: bool) -> None:
        """Question, answer; after the kill: (reconnect and) thanks, goodbye, the flow's end."""
        async def fresh_url() -> str:
            r = await self.stack.http.post(f"/v1/sessions/{sid}/voice-token")
            r.raise_for_status()
            return self.ws_url(r.json())

        client = CallClient(url, reconnect=fresh_url if reconnect else None,
                            reconnect_timeout=180, ready_timeout=180,
                            expect_close={1000, 1006, 1011, 1012})
        async with client as call:
            await call.wait_event("agent_speech_ended", timeout=120)
            spoke = await call.say(self.audio[QUESTION])
            await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
            answered.set()
            await killed.wait()
            t_kill = time.monotonic()
            if not reconnect:  # this caller walks away when the line drops
                await call.closed.wait()
                out["close_code"] = call.close_code
                return
            # A caller whose call moved or whose socket dropped waits to hear the call is back
            # (`resumed`); the others speak on at once (their calls must not notice).
            if out.get("must_resume"):
                await call.wait_event("resumed", after=t_kill, timeout=240)
                out["resumed_after_s"] = round(time.monotonic() - t_kill, 2)
            spoke = await call.say(self.audio[THANKS])
            try:
                await call.wait_event("end", after=spoke, timeout=90)
                out["ended_by_flow"] = True
            except AssertionError:
                out["ended_by_flow"] = False
            out["resumed"] = call.has_event("resumed", after=t_kill)
            out["drops"] = [{"code": code, "back_after_s": back} for _, code, back in call.drops]
            out["refused_reconnects"] = Counter(e.get("code") for e in call.refused_reconnects)
            out["events_after_kill"] = [
                {k: v for k, v in e.items() if k in ("type", "reason", "text", "role", "name")}
                for t, e in call.events if t >= t_kill and e.get("type") != "metrics"]

    async def session_record(self, sid: str) -> dict[str, Any]:
        http = self.stack.http
        record = (await api_call(http, "GET", f"/v1/sessions/{sid}")).json()
        events = (await api_call(http, "GET", f"/v1/sessions/{sid}/events")).json()["items"]
        ids = Counter(e.get("event_id") or e.get("id") for e in events)
        # How it ended: the last events stored (a flow's `end` node, or `session.ended`).
        last = [f"{e['type']}:{(e.get('payload') or {}).get('reason', '')}"
                for e in events[-2:]]
        return {"status": record.get("status"), "last_events": last,
                "user_turns": sum(1 for e in events if e["type"] == "user.turn"),
                "events_seen_twice": [k for k, c in ids.items() if c > 1]}

    async def drill(self, name: str, kill: Any, *, walk_away: int = 0) -> None:
        """`args.callers` calls (plus `walk_away` that do not reconnect); `kill()` once every
        call has had its first answer; returns when every call is over."""
        n = self.args.callers + walk_away
        sessions = [await self.new_session() for _ in range(n)]
        answered = [asyncio.Event() for _ in range(n)]
        killed = asyncio.Event()
        outs: list[dict[str, Any]] = [{} for _ in range(n)]
        tasks = [asyncio.create_task(self.call(sid, url, answered[i], killed, outs[i],
                                               reconnect=i < self.args.callers))
                 for i, (sid, url) in enumerate(sessions)]
        await asyncio.wait_for(asyncio.gather(*(a.wait() for a in answered)), 300)
        node_of = {sid: await self.node_of(sid) for sid, _ in sessions}
        report: dict[str, Any] = {"calls_by_node_before": Counter(node_of.values())}
        victim = await kill(node_of, outs, [sid for sid, _ in sessions])
        report["killed"] = victim
        t_kill = time.monotonic()
        killed.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        report["callers_done_after_s"] = round(time.monotonic() - t_kill, 1)
        rows = []
        for (sid, _), out, result in zip(sessions, outs, results, strict=True):
            row: dict[str, Any] = {"session": sid[:8], "node": node_of[sid][:8], **out}
            if "close_code" in out:  # walked away: how long until its session was closed
                row["closed_after_s"] = await self.closed_after(sid, t_kill)
            row.update(await self.session_record(sid))
            row["error"] = repr(result)[:300] if isinstance(result, BaseException) else None
            rows.append(row)
        report["sessions"] = rows
        self.report[name] = report
        print(json.dumps({name: report}, indent=1, default=str), flush=True)

    async def closed_after(self, sid: str, t_kill: float) -> float | None:
        deadline = time.monotonic() + ORPHAN_AFTER_S * 2 + 60
        while time.monotonic() < deadline:
            r = await api_call(self.stack.http, "GET", f"/v1/sessions/{sid}")
            if r.json().get("status") in ("ended", "failed"):
                return round(time.monotonic() - t_kill, 1)
            await asyncio.sleep(1.0)
        return None

    async def kill_api_node(self, node_of: dict[str, str], outs: list[dict[str, Any]],
                            sids: list[str]) -> str:
        """Every caller's socket goes through the API replica on the API node: all resume."""
        node = next(nd for nd in self.stack.worker_nodes
                    if nd.node_id == self.stack.api_node_id)
        assert all(v != node.node_id[:12] for v in node_of.values()), "a call on the API node"
        for out in outs:
            out["must_resume"] = True
        self.stack.ray_cluster.remove_node(node, allow_graceful=False)
        return f"API node {node.node_id[:8]}"

    async def kill_call_node(self, node_of: dict[str, str], outs: list[dict[str, Any]],
                             sids: list[str]) -> str:
        """The call node that does not hold the (restarted) API replica, with calls on it."""
        victim = self.stack.call_nodes[1]
        for out, sid in zip(outs, sids, strict=True):
            out["must_resume"] = node_of[sid] == victim.node_id[:12]
        self.stack.ray_cluster.remove_node(victim, allow_graceful=False)
        return f"call node {victim.node_id[:8]}"

    async def kill_model_replica(self) -> None:
        """One STT replica is killed while a caller speaks: the turn is still answered."""
        import ray

        sid, url = await self.new_session()
        out: dict[str, Any] = {"session": sid[:8]}
        async with CallClient(url, ready_timeout=180) as call:
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
            out["ignored"] = [e.get("reason") for _, e in call.events
                              if e.get("type") == "user_speech_ignored"]
        out["turn_answered"] = out["answer_after_kill"][:1] == [ANSWER]
        self.report["model_replica_killed"] = out
        print(json.dumps({"model_replica_killed": out}, indent=1), flush=True)


async def main_async(args: argparse.Namespace) -> None:
    drill = Drill(args)
    await drill.setup()
    try:
        print(json.dumps({"warm_by_node": {k[:8]: v for k, v in
                                           drill.stack.warm_by_node.items()}}), flush=True)
        if "api" in args.drills:
            await drill.drill("api_node_killed", drill.kill_api_node, walk_away=1)
        if "calls" in args.drills:
            await drill.drill("call_node_killed", drill.kill_call_node)
        if "model" in args.drills:
            await drill.kill_model_replica()
    finally:
        await drill.stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=3)
    parser.add_argument("--drills", default="api,calls,model",
                        help="which drills, in this order: api, calls, model")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
