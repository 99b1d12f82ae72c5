"""Voice benchmark: real calls over the voice WebSocket on this machine, real models.

    .venv/bin/python bench/voice.py                 # everything (≈10 min on 2 cores)
    .venv/bin/python bench/voice.py --turns 24 --skip-ray
    .venv/bin/python bench/voice.py serve           # a server for peers/pipecat/client.py;
                                                    # prints the --url-cmd to use
    .venv/bin/python bench/voice.py new-url --api http://127.0.0.1:PORT --token T --flow F

Prints, as JSON and lines:
* voice-to-voice p50/p95 over N turns (client side: the caller's last voiced frame sent → the
  first non-silent agent frame received, as peers/pipecat/client.py measures it) and the
  server's per-turn stages (end of turn, STT final, LLM first token, TTS first byte), each
  stage's share, and AICO's own overhead (voice-to-voice minus the provider times on the
  critical path and the end-of-turn silence);
* connect → first greeting audio with a warm and with a cold actor pool (Ray);
* memory per live session (the session actor's RSS) and whether it grows call after call;
* p95 voice-to-voice with 1, 5 and 10 simultaneous callers.
The flow answers each turn with the LLM (SmolLM2 via xllamacpp), like the peers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "voice")]

from voice_call_client import CallClient

CALLER_LINE = "Could you tell me what time the bakery opens tomorrow morning?"


def bench_flow(*, llm: bool) -> dict[str, Any]:
    answer: dict[str, Any] = (
        {"id": "answer", "type": "llm", "max_tokens": 40, "temperature": 0, "history": False,
         "instructions": "You are a bakery's phone assistant. Answer in one short sentence."}
        if llm else {"id": "answer", "type": "say", "text": "We open at seven in the morning."})
    return {"name": "Voice bench", "variables": {"q": {"type": "string", "default": ""}},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "greet", "type": "say", "text": "Hello, bakery here. How can I help?"},
                      {"id": "listen", "type": "listen", "into": "q"}, answer],
            "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                      {"from": "listen", "to": "answer"}, {"from": "answer", "to": "listen"}]}


def pct(xs: list[float], p: float) -> float | None:
    return round(float(np.percentile(xs, p)), 1) if xs else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {}

    async def setup(self) -> None:
        import uvicorn

        from actors.call_providers import warm_default_providers
        from actors.host import LocalVoiceHost
        from aico.settings import Settings
        from db.api_clients import insert_api_client, new_token
        from db.embedded import start_embedded_postgres
        from db.migrate import prepare_database
        from db.organizations import insert_organization
        from db.pool import create_pool
        from serve_apps.api import create_app

        self.home = Path(tempfile.mkdtemp(prefix="aico-voice-bench-"))
        self.home.chmod(0o755)
        self.pg = start_embedded_postgres(self.home / "pg", delete_on_stop=True)
        await prepare_database(self.pg.dsn)
        self.pool = await create_pool(self.pg.dsn, min_size=2, max_size=20)
        self.settings = Settings(home=self.home, database_url=self.pg.dsn)
        os.environ.update(AICO_HOME=str(self.home), AICO_DATABASE_URL=self.pg.dsn,
                          AICO_MODELS="inprocess")
        org = await insert_organization(self.pool, slug="bench", name="bench")
        self.token = new_token()
        await insert_api_client(self.pool, org_id=org["id"], name="bench", token=self.token)
        self.stt, self.tts = await warm_default_providers(llm=True)
        self.local_host = LocalVoiceHost(self.pool, self.settings)
        self.app = create_app(self.settings, pool=self.pool, voice_host=self.local_host)
        self.port = self.args.port or _free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.server_task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.02)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}",
                                      headers={"Authorization": f"Bearer {self.token}"},
                                      timeout=60)
        self.flows = {llm: await self.publish(bench_flow(llm=llm)) for llm in (True, False)}
        chunks = [f.pcm16 async for f in self.tts.synthesize(CALLER_LINE)]
        from actors.audio import resample_pcm16

        self.caller = resample_pcm16(b"".join(chunks), self.tts.sample_rate, 16000)

    async def publish(self, doc: dict[str, Any]) -> str:
        r = await self.http.post("/v1/flows", json={"name": doc["name"], "document": doc})
        flow_id = r.json()["id"]
        await self.http.post(f"/v1/flows/{flow_id}/publish")
        return flow_id

    async def new_url(self, *, llm: bool = True) -> tuple[str, str]:
        r = await self.http.post(f"/v1/flows/{self.flows[llm]}/sessions",
                                 json={"channel": "voice"})
        body = r.json()
        path = body["voice"]["url"].split("/v1/", 1)[1]
        return body["id"], f"ws://127.0.0.1:{self.port}/v1/{path}"

    # --- one call ----------------------------------------------------------------------

    async def call(self, *, turns: int, llm: bool = True) -> dict[str, Any]:
        _, url = await self.new_url(llm=llm)
        out: dict[str, Any] = {"v2v": [], "server": []}
        async with CallClient(url) as call:
            await call.wait_event("agent_speech_ended", timeout=120)
            first = call.first_audio_after(call.connected_at)
            out["greeting_s"] = first - call.connected_at if first else None
            for _ in range(turns):
                spoke = await call.say(self.caller)
                started = await call.wait_event("agent_speech_started", after=spoke,
                                                timeout=120)
                del started
                await call.wait_agent_quiet(since=spoke, quiet_s=0.6, timeout=120)
                await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
                reply = call.first_audio_after(spoke)
                if reply is not None:
                    out["v2v"].append((reply - spoke) * 1000)
                await asyncio.sleep(0.3)
            out["server"] = [e["turn"] for _, e in call.events
                             if e.get("type") == "metrics" and "turn" in e]
            out["early_audio"] = 0
        return out

    # --- parts -------------------------------------------------------------------------

    async def latency(self) -> None:
        turns_per_call = 6
        calls = max(1, -(-self.args.turns // turns_per_call))
        v2v: list[float] = []
        server: list[dict[str, Any]] = []
        greet: list[float] = []
        for _ in range(calls):
            r = await self.call(turns=turns_per_call)
            v2v += r["v2v"]
            server += r["server"]
            if r["greeting_s"] is not None:
                greet.append(r["greeting_s"] * 1000)
        stages = {k: [t[k] for t in server if t.get(k) is not None]
                  for k in ("end_of_turn_ms", "stt_final_ms", "executor_ms", "llm_ttft_ms",
                            "llm_first_sentence_ms", "tts_ttfb_ms", "voice_to_voice_ms",
                            "aico_ms")}
        # Critical path after the caller's last voiced audio: the later of end-of-turn and
        # STT final, then the executor, the LLM's first token and first sentence, the TTS
        # first byte; AICO's overhead (`aico_ms`, measured by the server) is what remains.
        overhead = [t["aico_ms"] for t in server if t.get("aico_ms") is not None]
        shares: dict[str, list[float]] = {}
        for t in server:
            v = t.get("voice_to_voice_ms")
            if not v:
                continue
            eot, stt = t["end_of_turn_ms"], t["stt_final_ms"]
            parts = {"turn_detection_silence": eot, "stt_after_end_of_turn": max(0, stt - eot),
                     "llm_ttft": t.get("llm_ttft_ms") or 0,
                     "llm_first_sentence": t.get("llm_first_sentence_ms") or 0,
                     "tts_ttfb": t.get("tts_ttfb_ms") or 0, "aico": t.get("aico_ms") or 0}
            for k, x in parts.items():
                shares.setdefault(k, []).append(x / v)
        self.results["latency"] = {
            "turns": len(v2v), "client_v2v_ms_p50": pct(v2v, 50), "client_v2v_ms_p95": pct(v2v, 95),
            "client_v2v_ms": [round(x) for x in v2v],
            "server_stage_ms_p50": {k: pct(v, 50) for k, v in stages.items()},
            "server_stage_ms_p95": {k: pct(v, 95) for k, v in stages.items()},
            "stage_share_of_v2v_mean": {k: round(statistics.mean(v), 3) for k, v in shares.items()
                                        if v},
            "aico_overhead_ms_p50": pct(overhead, 50), "aico_overhead_ms_p95": pct(overhead, 95),
            "greeting_first_audio_ms_local": [round(x) for x in greet],
        }
        print("latency", json.dumps(self.results["latency"], indent=1), flush=True)

    async def concurrency(self) -> None:
        out = {}
        for n in self.args.callers:
            results = await asyncio.gather(*(self.call(turns=2) for _ in range(n)))
            v2v = [x for r in results for x in r["v2v"]]
            out[str(n)] = {"turns": len(v2v), "v2v_ms_p50": pct(v2v, 50),
                           "v2v_ms_p95": pct(v2v, 95)}
            print("callers", n, out[str(n)], flush=True)
        self.results["concurrent_callers"] = out

    async def ray_pool(self) -> None:
        import ray

        from actors.host import RayVoiceHost
        from actors.pool import VoiceActorPool

        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"AICO_HOME": str(self.home),
                                           "AICO_DATABASE_URL": self.pg.dsn,
                                           "AICO_MODELS": "inprocess"}})
        state = self.app.state.aico
        res: dict[str, Any] = {}
        # Warm: a pool of 1, refilled (and waited for) between calls.
        pool = VoiceActorPool(size=1, max_restarts=1, calls_per_actor=1000)
        state.voice_host = host = RayVoiceHost(pool)
        warm = []
        rss: list[int] = []
        for i in range(self.args.greetings):
            await pool.wait_warm(timeout_s=300)
            r = await self.call(turns=1, llm=False)
            warm.append(round(r["greeting_s"] * 1000))
            actor = pool._idle[-1] if pool._idle else None
            if actor is not None:
                rss.append(await actor.rss_bytes.remote())
        del host
        res["greeting_first_audio_ms_warm_pool"] = warm
        # The same actor, call after call (it went back to the pool each time).
        res["actor_rss_mib_after_each_call"] = [round(x / 2**20) for x in rss]
        idle_actor = pool._idle[-1]
        res["idle_warm_actor_rss_mib"] = round(await idle_actor.rss_bytes.remote() / 2**20)
        await pool.aclose()
        # Cold: no pool; every call waits for a new actor to start and load its models.
        cold_pool = VoiceActorPool(size=0, max_restarts=1)
        state.voice_host = RayVoiceHost(cold_pool)
        cold = []
        for _ in range(self.args.cold):
            r = await self.call(turns=1, llm=False)
            cold.append(round(r["greeting_s"] * 1000))
        res["greeting_first_audio_ms_cold_pool"] = cold
        await cold_pool.aclose()
        state.voice_host = self.local_host
        self.results["ray"] = res
        print("ray", json.dumps(res), flush=True)

    async def local_memory(self) -> None:
        import gc

        def rss() -> float:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
            return 0.0

        gc.collect()
        before = rss()
        after = []
        for _ in range(self.args.memory_calls):
            await self.call(turns=1, llm=False)
            gc.collect()
            after.append(round(rss()))
        self.results["in_process_rss_mib"] = {"before": round(before), "after_each_call": after}
        print("memory", self.results["in_process_rss_mib"], flush=True)

    async def close(self) -> None:
        self.server.should_exit = True
        await self.server_task
        await self.http.aclose()
        await self.pool.close()
        self.pg.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(args: argparse.Namespace) -> None:
    bench = Bench(args)
    await bench.setup()
    try:
        if args.command == "serve":
            print(f"--url-cmd '{sys.executable} {Path(__file__)} new-url --api "
                  f"http://127.0.0.1:{bench.port} --token {bench.token} "
                  f"--flow {bench.flows[True]}'", flush=True)
            await asyncio.Event().wait()
        await bench.latency()
        if not args.skip_memory:
            await bench.local_memory()
        if args.callers:
            await bench.concurrency()
        if not args.skip_ray:
            await bench.ray_pool()
    finally:
        print(json.dumps(bench.results, indent=1), flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(bench.results, indent=1))
        await bench.close()


def new_url(args: argparse.Namespace) -> None:
    r = httpx.post(f"{args.api}/v1/flows/{args.flow}/sessions", json={"channel": "voice"},
                   headers={"Authorization": f"Bearer {args.token}"}, timeout=30)
    path = r.json()["voice"]["url"].split("/v1/", 1)[1]
    print(f"ws://{args.api.split('://', 1)[1]}/v1/{path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", nargs="?", default="bench", choices=["bench", "serve", "new-url"])
    ap.add_argument("--turns", type=int, default=24)
    ap.add_argument("--callers", type=int, nargs="*", default=[1, 5, 10])
    ap.add_argument("--greetings", type=int, default=4)
    ap.add_argument("--cold", type=int, default=2)
    ap.add_argument("--memory-calls", type=int, default=6)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--json-out", default="")
    ap.add_argument("--api", default="")
    ap.add_argument("--token", default="")
    ap.add_argument("--flow", default="")
    args = ap.parse_args()
    if args.command == "new-url":
        new_url(args)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
