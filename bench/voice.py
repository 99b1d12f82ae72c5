"""Voice benchmark: real calls over the voice WebSocket on this machine, real models.

    .venv/bin/python bench/voice.py --concurrency 8  # `aico up`, 8 real-time callers at once
    .venv/bin/python bench/voice.py --concurrency 8 --api http://127.0.0.1:8000 --token T
    .venv/bin/python bench/voice.py --concurrency 8 --calls-per-process 2  # 2 calls an actor
    .venv/bin/python bench/voice.py --in-a-row 50    # 50 calls one after another: PSS per call
    .venv/bin/python bench/voice.py --concurrency 1 --line "Billing."  # a one-word answer
    .venv/bin/python bench/voice.py                 # in-process: everything (≈10 min on 2 cores)
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
The flow answers each turn with the LLM (SmolLM2 via xllamacpp), like the peers.

`--concurrency N` and `--in-a-row N` run against AICO as an operator runs it (`aico up` in a
fresh home: Ray, the `models` Serve app, warm call actors), or against `--api`. The callers
speak a line made by espeak-ng (not our TTS), in real time, one WebSocket each; v2v is measured
as above; a turn is answered when agent audio comes within 20 s. Memory is the PSS
(psutil `memory_full_info`) of each call actor process (`ray::VoiceSession`), sampled while
the calls are live, and of the model replicas. An actor process carries
`--calls-per-process` calls (AICO_VOICE_CALLS_PER_PROCESS for `aico up`): PSS per call is
each sampled process's PSS divided by the calls it carried at that moment (the count it
publishes, actors.voice_session.CALLS_DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "voice")]

from bakery_caller import CALLER_LINE, bakery_flow, caller_line, pct
from voice_call_client import CallClient

ONE_WORD_LINE = "Billing."
AICO = Path(sys.executable).parent / "aico"
ANSWER_TIMEOUT_S = 20.0


def espeak_wav(path: Path, text: str, *, voice: str = "en-us", wpm: int = 175) -> Path:
    """A caller's line made by espeak-ng (a voice none of the agents speak with), 16 kHz mono."""
    from actors.audio import resample_pcm16

    raw = path.with_name(path.stem + ".22k.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text],
                   check=True, capture_output=True)
    with wave.open(str(raw)) as w:
        pcm = resample_pcm16(w.readframes(w.getnframes()), w.getframerate(), 16000)
    raw.unlink()
    pad = b"\0" * (16000 * 3 // 10 * 2)  # 0.3 s of room tone each side, as a microphone gives
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pad + pcm + pad)
    return path


def read_wav16k(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1, path
        return w.readframes(w.getnframes())


class AicoUp:
    """`aico up` in a fresh home on a free port, as an operator starts it; stopped with Ctrl-C."""

    def __init__(self, *, log_path: Path, pool_size: int | None = None,
                 calls_per_process: int | None = None) -> None:
        self.log_path = log_path
        self.pool_size = pool_size
        self.calls_per_process = calls_per_process
        self.home = Path(tempfile.mkdtemp(prefix="aico-voice-bench-")) / "home"
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.up_at = 0.0
        self.up_s = 0.0
        self.token = ""

    def start(self, *, timeout_s: float = 900) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AICO_")}
        env.update(AICO_HOME=str(self.home), AICO_PORT=str(self.port))
        if self.pool_size:
            env["AICO_VOICE_POOL_SIZE"] = str(self.pool_size)
        if self.calls_per_process:
            env["AICO_VOICE_CALLS_PER_PROCESS"] = str(self.calls_per_process)
        log = self.log_path.open("wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([str(AICO), "up"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        while b"AICO is up" not in self.log_path.read_bytes():
            if self.proc.poll() is not None:
                raise SystemExit(f"aico up exited {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise SystemExit(f"aico up not up in {timeout_s:.0f}s; see {self.log_path}")
            time.sleep(0.2)
        self.up_at = time.monotonic()
        self.up_s = self.up_at - t0
        self.token = (self.home / "dev-token").read_text().strip()

    def stop(self) -> None:
        """Stop it and remove its home (its database, logs and tokens: 40 MB a run)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group `aico up` leads (ours)
                self.proc.wait(timeout=30)
        shutil.rmtree(self.home.parent, ignore_errors=True)


def call_actor_pss_mib(root_pid: int | None = None) -> list[float]:
    """PSS of every call actor process (`ray::VoiceSession`) under `root_pid` (the `aico up`
    this bench started; None: on this machine), in MiB."""
    return [round(pss / 2**20, 1) for _, pss in _processes("ray::VoiceSession", root_pid)]


def call_actor_samples(root_pid: int | None = None) -> list[tuple[float, int | None]]:
    """(PSS in MiB, calls it carries now) of every call actor process; calls is None where
    the process has not published its count."""
    from actors.voice_session import CALLS_DIR

    out = []
    for pid, _, pss in _process_pss("ray::VoiceSession", root_pid):
        try:
            calls: int | None = int((CALLS_DIR / str(pid)).read_text())
        except (OSError, ValueError):
            calls = None
        out.append((round(pss / 2**20, 1), calls))
    return out


def model_replicas_pss_mib(root_pid: int | None = None) -> dict[str, float]:
    """PSS of the `models` Serve replicas, by process title."""
    return {title: round(pss / 2**20, 1)
            for title, pss in _processes("ray::ServeReplica:models", root_pid)}


def _processes(title: str, root_pid: int | None) -> list[tuple[str, int]]:
    """(title, PSS in bytes) of each process whose title starts with `title`."""
    return [(name, pss) for _, name, pss in _process_pss(title, root_pid)]


def _process_pss(title: str, root_pid: int | None) -> list[tuple[int, str, int]]:
    """(pid, title, PSS in bytes) of each process whose title starts with `title`."""
    import psutil

    out = []
    for proc in _processes_raw(title, root_pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied,
                                 psutil.ZombieProcess):
            out.append((proc.pid, (proc.cmdline() or [""])[0], proc.memory_full_info().pss))
    return out


class AicoClient:
    """Publishes the bench flow on a running AICO and opens voice sessions on it."""

    def __init__(self, api: str, token: str) -> None:
        self.api = api
        self.http = httpx.AsyncClient(base_url=api, timeout=60,
                                      headers={"Authorization": f"Bearer {token}"})
        self.flow_id = ""
        self.root_pid: int | None = None  # the `aico up` whose processes are measured

    async def publish(self, doc: dict[str, Any]) -> str:
        r = await self.http.post("/v1/flows", json={"name": doc["name"], "document": doc})
        r.raise_for_status()
        self.flow_id = r.json()["id"]
        (await self.http.post(f"/v1/flows/{self.flow_id}/publish")).raise_for_status()
        return self.flow_id

    async def voice_url(self) -> str:
        r = await self.http.post(f"/v1/flows/{self.flow_id}/sessions", json={"channel": "voice"})
        r.raise_for_status()
        return r.json()["voice"]["url"]  # the media port of the replica that made it

    async def aclose(self) -> None:
        await self.http.aclose()


async def live_caller(client: AicoClient, caller: bytes, *, turns: int,
                      hang_up_at_greeting: bool = False) -> dict[str, Any]:
    """One real-time caller: hears the greeting, then says `caller` `turns` times (or hangs
    up as soon as the greeting's first audio arrives)."""
    t0 = time.monotonic()
    url = await client.voice_url()
    out: dict[str, Any] = {"v2v_ms": [], "unanswered": 0}
    async with CallClient(url) as call:
        if hang_up_at_greeting:
            await call.wait_agent_quiet(since=call.connected_at, quiet_s=0.0, timeout=120)
        else:
            await call.wait_event("agent_speech_ended", timeout=120)
        first = call.first_audio_after(call.connected_at)
        out["greeting_ms"] = round((first - call.connected_at) * 1000) if first else None
        out["session_and_greeting_ms"] = round((first - t0) * 1000) if first else None
        for _ in range(turns):
            spoke = await call.say(caller)
            try:
                await call.wait_agent_quiet(since=spoke, quiet_s=0.8, timeout=ANSWER_TIMEOUT_S)
            except AssertionError:
                pass
            reply = call.first_audio_after(spoke)
            if reply is None or reply - spoke > ANSWER_TIMEOUT_S:
                out["unanswered"] += 1
            else:
                out["v2v_ms"].append(round((reply - spoke) * 1000))
            if call.has_event("agent_speech_started", after=spoke):
                try:  # the reply plays out before the caller speaks again
                    await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
                except AssertionError:
                    out["reply_not_ended"] = out.get("reply_not_ended", 0) + 1
            await asyncio.sleep(0.3)
        out["server"] = [e["turn"] for _, e in call.events
                         if e.get("type") == "metrics" and "turn" in e]
        # Per agent speech (greeting, each reply): silence inside it, audio late.
        out["speech_gap_ms"] = [e["speech_gap_ms"] for _, e in call.events
                                if e.get("type") == "metrics" and "speech_gap_ms" in e]
    return out


STAGES = ("end_of_turn_ms", "stt_final_ms", "executor_ms", "llm_ttft_ms",
          "llm_first_sentence_ms", "tts_ttfb_ms", "aico_ms", "voice_to_voice_ms")


def stage_percentiles(turns: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per server stage, [p50, p95] over the turns that report it."""
    return {k: [pct(v, 50), pct(v, 95)] for k in STAGES
            if (v := [float(t[k]) for t in turns if t.get(k) is not None])}


def replica_cpu_s(root_pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each model replica and the call actors."""
    import psutil

    out: dict[str, float] = {}
    for title in ("ray::ServeReplica:models", "ray::VoiceSession", "ray::ProxyActor",
                  "ray::ServeReplica:api"):
        for proc in _processes_raw(title, root_pid):
            try:
                cpu = proc.cpu_times()
                name = (proc.cmdline() or [""])[0]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            key = name.split(" ")[0] if "ServeReplica" in name else title
            out[key] = round(out.get(key, 0.0) + cpu.user + cpu.system, 1)
    return out


def _processes_raw(title: str, root_pid: int | None) -> list[Any]:
    import psutil

    procs: list[Any] = []
    if root_pid is None:
        procs = list(psutil.process_iter())
    else:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs = psutil.Process(root_pid).children(recursive=True)
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied,
                                 psutil.ZombieProcess):
            if (proc.cmdline() or [""])[0].startswith(title):
                out.append(proc)
    return out


async def sample_actors(stop: asyncio.Event, into: list[list[tuple[float, int | None]]], *,
                        root_pid: int | None, every_s: float = 1.0) -> None:
    """Every `every_s` until `stop`: (PSS in MiB, calls carried) of each call actor process."""
    while not stop.is_set():
        into.append(await asyncio.to_thread(call_actor_samples, root_pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def concurrent_callers(client: AicoClient, caller: bytes, *, callers: int,
                             turns: int, stagger_s: float = 0.7) -> dict[str, Any]:
    """`callers` real-time callers at once, `turns` turns each. They dial `stagger_s` apart,
    as callers do, rather than finishing every sentence in the same 20 ms frame."""
    stop = asyncio.Event()
    samples: list[list[tuple[float, int | None]]] = []
    sampler = asyncio.create_task(sample_actors(stop, samples, root_pid=client.root_pid))
    idle_actors = call_actor_pss_mib(client.root_pid)
    cpu_before = replica_cpu_s(client.root_pid)
    wall0 = time.monotonic()

    async def dial(i: int) -> dict[str, Any]:
        await asyncio.sleep(i * stagger_s)
        return await live_caller(client, caller, turns=turns)

    results = await asyncio.gather(*(dial(i) for i in range(callers)), return_exceptions=True)
    stop.set()
    await sampler
    wall = time.monotonic() - wall0
    cpu_after = replica_cpu_s(client.root_pid)
    ok = [r for r in results if isinstance(r, dict)]
    v2v = [x for r in ok for x in r["v2v_ms"]]
    # Per round (every caller's first turn, then second...): the callers dial within a few
    # seconds, so their first turns end together; later rounds spread out.
    rounds = [[r["v2v_ms"][i] for r in ok if len(r["v2v_ms"]) > i] for i in range(turns)]
    busiest = max(samples, key=len, default=[])
    per_actor = [pss for s in samples for pss, _ in s]
    # An actor carrying calls when sampled: its PSS shared out among them.
    per_call = [pss / calls for s in samples for pss, calls in s if calls]
    carried = [calls for s in samples for _, calls in s if calls]
    return {
        "callers": callers, "turns_per_caller": turns, "stagger_s": stagger_s,
        "turns_answered": len(v2v), "turns_asked": callers * turns,
        "calls_failed": [repr(r)[:200] for r in results if not isinstance(r, dict)],
        "v2v_ms_p50": pct(v2v, 50), "v2v_ms_p95": pct(v2v, 95), "v2v_ms": v2v,
        "v2v_ms_p50_p95_by_round": [[pct(r, 50), pct(r, 95)] for r in rounds],
        "greeting_ms": [r["greeting_ms"] for r in ok],
        "call_actor_pss_mib_max": max(per_actor, default=None),
        "call_actor_pss_mib_p50": pct(per_actor, 50),
        "pss_mib_per_call_max": round(max(per_call), 1) if per_call else None,
        "pss_mib_per_call_p50": pct(per_call, 50),
        "calls_per_live_actor_max": max(carried, default=None),
        "call_actors_live_max": len(busiest), "call_actors_before": len(idle_actors),
        "model_replicas_pss_mib": model_replicas_pss_mib(client.root_pid),
        "server_stage_ms_p50_p95": stage_percentiles([t for r in ok for t in r["server"]]),
        # The first round is the busiest (every caller's first turn within a few seconds).
        "server_stage_ms_p50_p95_by_round": [
            stage_percentiles([r["server"][i] for r in ok if len(r["server"]) > i])
            for i in range(turns)],
        # Dead air inside the agent's speech (its next audio late): per speech, and in all.
        "speech_gap_ms_p95": pct(gaps := [g for r in ok for g in r["speech_gap_ms"]], 95),
        "speech_gaps": sum(1 for g in gaps if g > 0), "speech_gap_ms_total": sum(gaps),
        # How each turn's reply was prepared: adopted from the pause (speculative), cancelled...
        "speculation": dict(Counter(str(t.get("speculation")) for r in ok for t in r["server"])),
        # Share of one core each process used during the run (2.0 = both cores).
        "cpu_cores_used": {k: round((v - cpu_before.get(k, 0.0)) / wall, 2)
                           for k, v in cpu_after.items()},
        "wall_s": round(wall, 1),
    }


async def calls_in_a_row(client: AicoClient, caller: bytes, *, calls: int) -> dict[str, Any]:
    """`calls` calls one after another (each hangs up once the greeting's first audio has
    come); during each, the PSS of the busiest call actor process: flat if a call leaves
    nothing behind."""
    per_call: list[float] = []
    greeting: list[int] = []
    answered = 0
    for _ in range(calls):
        stop = asyncio.Event()
        samples: list[list[tuple[float, int | None]]] = []
        sampler = asyncio.create_task(sample_actors(stop, samples, root_pid=client.root_pid,
                                                    every_s=0.5))
        try:
            r = await live_caller(client, caller, turns=0, hang_up_at_greeting=True)
        except Exception as err:  # noqa: BLE001 - one failed call is a figure, not the end
            r = {"v2v_ms": [], "greeting_ms": None, "error": repr(err)[:200]}
        stop.set()
        await sampler
        answered += r["greeting_ms"] is not None
        greeting.append(r["greeting_ms"])
        per_call.append(max((pss for s in samples for pss, _ in s), default=0.0))
    head, tail = per_call[:5], per_call[-5:]
    heard = [float(g) for g in greeting if g is not None]
    return {"calls": calls, "greeted": answered, "greeting_ms": greeting,
            "greeting_ms_p50": pct(heard, 50), "greeting_ms_p95": pct(heard, 95),
            "call_actor_pss_mib_max_per_call": per_call,
            "first5_mean_mib": round(statistics.mean(head), 1) if head else None,
            "last5_mean_mib": round(statistics.mean(tail), 1) if tail else None}


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
        self.flows = {llm: await self.publish(bakery_flow("Voice bench", llm=llm))
                      for llm in (True, False)}
        self.caller = await caller_line(self.tts, 16000)

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
            # Per turn: the reply prepared on the pause transcript (adopted / cancelled /
            # refused / None) and whether its opening audio was made during the pause.
            "speculation": [t.get("speculation") for t in server],
            "tts_ahead": [t.get("tts_ahead") for t in server],
        }
        print("latency", json.dumps(self.results["latency"], indent=1), flush=True)

    async def ray_pool(self) -> None:
        import ray

        from actors.host import RayVoiceHost
        from actors.pool import VoiceActorPool

        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
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
            actor = pool.idle[-1] if pool.idle else None
            if actor is not None:
                rss.append(await actor.rss_bytes.remote())
        del host
        res["greeting_first_audio_ms_warm_pool"] = warm
        # The same actor, call after call (it went back to the pool each time).
        res["actor_rss_mib_after_each_call"] = [round(x / 2**20) for x in rss]
        idle_actor = pool.idle[-1]
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
        if not args.skip_ray:
            await bench.ray_pool()
    finally:
        print(json.dumps(bench.results, indent=1), flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(bench.results, indent=1))
        await bench.close()


async def run_live(args: argparse.Namespace) -> dict[str, Any]:
    """`--concurrency` / `--in-a-row`: against `aico up` (started here) or `--api`."""
    work = Path(tempfile.mkdtemp(prefix="aico-voice-live-"))
    caller = read_wav16k(espeak_wav(work / "question.wav", args.line))
    up: AicoUp | None = None
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    if not args.api:
        up = AicoUp(log_path=work / "aico-up.log",
                    pool_size=args.pool_size or max(2, args.concurrency),
                    calls_per_process=args.calls_per_process)
        up.start()
        results["aico_up_s"] = round(up.up_s, 1)
        print(f"aico up: up in {up.up_s:.1f}s ({up.api}; log {up.log_path})", flush=True)
    client = AicoClient(args.api or (up.api if up else ""), args.token or (up.token if up else ""))
    client.root_pid = up.proc.pid if up and up.proc else None
    try:
        await client.publish(bakery_flow("Voice bench", llm=True))
        if args.concurrency:
            r = await concurrent_callers(client, caller, callers=args.concurrency,
                                         turns=args.turns_per_caller)
            results["concurrency"] = r
            print(f"{r['callers']} callers at once: answered {r['turns_answered']}/"
                  f"{r['turns_asked']}, v2v p50 {r['v2v_ms_p50']} ms, p95 {r['v2v_ms_p95']} ms;"
                  f" call actor PSS p50 {r['call_actor_pss_mib_p50']} MiB, max "
                  f"{r['call_actor_pss_mib_max']} MiB; per call p50 "
                  f"{r['pss_mib_per_call_p50']} MiB, max {r['pss_mib_per_call_max']} MiB "
                  f"(up to {r['calls_per_live_actor_max']} calls an actor)", flush=True)
            print(f"v2v p50/p95 ms by round (every caller's first turn, second...): "
                  f"{r['v2v_ms_p50_p95_by_round']}", flush=True)
            print(f"server stages p50/p95 ms: {r['server_stage_ms_p50_p95']}", flush=True)
            print(f"replies prepared at the pause: {r['speculation']}", flush=True)
            print(f"cores used: {r['cpu_cores_used']}", flush=True)
        if args.in_a_row:
            r = await calls_in_a_row(client, caller, calls=args.in_a_row)
            results["in_a_row"] = r
            print(f"{r['calls']} calls in a row: greeted {r['greeted']}, busiest call actor "
                  f"PSS first 5 {r['first5_mean_mib']} MiB, last 5 {r['last5_mean_mib']} MiB",
                  flush=True)
    finally:
        results["load_after"] = os.getloadavg()
        await client.aclose()
        if up is not None:
            up.stop()
    print(json.dumps(results, indent=1), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    return results


def new_url(args: argparse.Namespace) -> None:
    r = httpx.post(f"{args.api}/v1/flows/{args.flow}/sessions", json={"channel": "voice"},
                   headers={"Authorization": f"Bearer {args.token}"}, timeout=30)
    print(r.json()["voice"]["url"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", nargs="?", default="bench", choices=["bench", "serve", "new-url"])
    ap.add_argument("--turns", type=int, default=24)
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
    ap.add_argument("--concurrency", type=int, default=0,
                    help="callers at once against `aico up` (or --api)")
    ap.add_argument("--turns-per-caller", type=int, default=3)
    ap.add_argument("--in-a-row", type=int, default=0, help="calls one after another")
    ap.add_argument("--line", default=CALLER_LINE,
                    help=f"what the callers say (--concurrency), e.g. {ONE_WORD_LINE!r}")
    ap.add_argument("--pool-size", type=int, default=0, help="AICO_VOICE_POOL_SIZE for aico up")
    ap.add_argument("--calls-per-process", type=int, default=0,
                    help="AICO_VOICE_CALLS_PER_PROCESS for aico up (calls one actor carries)")
    args = ap.parse_args()
    if args.concurrency or args.in_a_row:
        asyncio.run(run_live(args))
        return
    if args.command == "new-url":
        new_url(args)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
