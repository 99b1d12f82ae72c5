"""AICO, LiveKit Agents and Pipecat side by side, in one run on this machine, with one client.

    .venv/bin/python bench/side_by_side.py                      # 12 turns per line per system
    .venv/bin/python bench/side_by_side.py --turns 3 --only aico
    .venv/bin/python bench/side_by_side.py --concurrency 8 --in-a-row 50 --out RESULTS.md

Each system is started fresh, measured, and stopped before the next, so none shares the two
cores with another: the peers from ../shared/peers (their own venvs, made by their setup
scripts: /tmp/peer/venv, /tmp/lkpeer/venv, stock defaults), AICO with `aico up` in a fresh home
(Ray, the `models` Serve app, warm call actors). The client is the peers' own
`pipecat/client.py` (run from the Pipecat venv): one WebSocket connection per turn, the
caller's WAV in real time, voice-to-voice = first non-silent agent frame after the caller's
last speech frame. Two caller lines, made with espeak-ng (a voice none of the agents speaks
with): a ~3.4 s question and a one-word answer. AICO gets a fresh session per turn through
`--url-cmd` (a POST to /v1/flows/{id}/sessions); its time is reported apart from
connect → greeting. The first turn of each system's first run is its first call after start.

With `--concurrency N` / `--in-a-row N`, the same `aico up` then serves N real-time callers at
once and N calls one after another (bench/voice.py's code), while memory is sampled.
Prints one markdown table (and writes it with the raw figures to --out).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("PEERS_DIR", HERE.parent.parent / "shared" / "peers"))
PEER_PY = Path("/tmp/peer/venv/bin/python")
LK_PY = Path("/tmp/lkpeer/venv/bin/python")
CLIENT = PEERS / "pipecat" / "client.py"
# A turn with no agent audio this long after the caller stopped is unanswered (the client's
# default, 20 s, makes a run of a peer that never answers take minutes longer).
REPLY_TIMEOUT_S = 8
TURN_LINE = re.compile(r"turn\s+(\d+): greeting TTFA\s+(nan|[\d.]+) ms \| v2v\s+(nan|[\d.]+) ms")


def _voice_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_voice", HERE / "voice.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


voice = _voice_module()

GREETING = "Hello! Say billing or support."  # the peers' greeting
INSTRUCTIONS = "You are a phone agent. Answer in one short sentence."  # the peers' prompt


def peer_like_flow() -> dict[str, Any]:
    """AICO's flow for the comparison: the peers' greeting, prompt and reply budget."""
    return {"name": "Side by side", "variables": {"q": {"type": "string", "default": ""}},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "greet", "type": "say", "text": GREETING},
                      {"id": "listen", "type": "listen", "into": "q"},
                      {"id": "answer", "type": "llm", "max_tokens": 64, "history": False,
                       "instructions": INSTRUCTIONS}],
            "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                      {"from": "listen", "to": "answer"}, {"from": "answer", "to": "listen"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], p: int) -> float | None:
    return round(float(statistics.quantiles(xs, n=100, method="inclusive")[p - 1])) \
        if len(xs) > 1 else (round(xs[0]) if xs else None)


class TreeMemory:
    """Peak summed PSS of a process tree, sampled in a thread; plus the trees of processes whose
    command line names `also` (PostgreSQL detaches from `aico up`: its data folder names it)."""

    def __init__(self, root_pid: int, *, also: str = "", every_s: float = 3.0) -> None:
        self.root_pid, self.also, self.every_s = root_pid, also, every_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> float:
        try:
            root = psutil.Process(self.root_pid)
            procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
        except psutil.NoSuchProcess:
            return 0.0
        for p in psutil.process_iter(["cmdline"]) if self.also else []:
            if self.also in " ".join(p.info["cmdline"] or []):
                try:
                    for q in [p, *p.children(recursive=True)]:
                        procs.setdefault(q.pid, q)
                except psutil.NoSuchProcess:
                    pass
        total = 0
        for p in procs.values():
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mib = max(self.peak_mib, self.sample())

    def __enter__(self) -> Self:
        self.peak_mib = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_client(wav: Path, *, turns: int, url: str = "", url_cmd: str = "", stats_url: str = "",
               json_out: Path, log: Path) -> dict[str, Any]:
    """The peers' client, from the Pipecat venv; its JSON (summary and per turn)."""
    cmd = [str(PEER_PY), str(CLIENT), "--wav", str(wav), "--turns", str(turns),
           "--json-out", str(json_out), "--reply-timeout", str(REPLY_TIMEOUT_S)]
    cmd += ["--url-cmd", url_cmd] if url_cmd else ["--url", url]
    if stats_url:
        cmd += ["--stats-url", stats_url]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=120 + turns * 60)
    with log.open("a") as out:
        out.write(done.stdout + done.stderr)
    if json_out.exists():
        return json.loads(json_out.read_text())
    # The client cannot summarize a run where no turn was answered (NaN percentiles): its
    # per-turn lines still say what happened.
    rows = []
    for m in TURN_LINE.finditer(done.stdout):
        row: dict[str, Any] = {"turn": int(m[1])}
        if m[2] != "nan":
            row["greeting_ttfa"] = float(m[2]) / 1000
        if m[3] != "nan":
            row["v2v"] = float(m[3]) / 1000
        rows.append(row)
    if not rows:
        raise SystemExit(f"the client failed ({done.returncode}); see {log}")
    return {"turns": rows}


def summarize(run: dict[str, Any], turns: int) -> dict[str, Any]:
    rows = run["turns"]
    v2v = [r["v2v"] * 1000 for r in rows if "v2v" in r]
    # Connect → greeting: from the WebSocket connect, not counting a session's creation.
    greet = [(r["greeting_ttfa"] - r.get("t_url", 0.0)) * 1000 for r in rows
             if "greeting_ttfa" in r]
    urls = [r["t_url"] * 1000 for r in rows if "t_url" in r]
    return {"answered": len(v2v), "asked": turns, "v2v_p50": pct(v2v, 50),
            "v2v_p95": pct(v2v, 95), "v2v_ms": [round(x) for x in v2v],
            "greeting_ms": [round(x) for x in greet],
            # Agent audio while the caller was still speaking (a reply to a pause, a greeting
            # that ran on): such a turn's v2v is not a real answer time.
            "turns_with_audio_during_speech": sum(
                1 for r in rows if (r.get("audio_during_speech_s") or 0) > 0),
            "session_create_ms_p50": pct(urls, 50) if urls else None}


class Peer:
    def __init__(self, name: str, python: Path, script: Path, work: Path) -> None:
        self.name, self.python, self.script, self.work = name, python, script, work
        self.port, self.llm_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stats"

    def start(self, timeout_s: float = 600) -> None:
        log = (self.work / f"{self.name}-server.log").open("wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(self.python), str(self.script), "--port", str(self.port),
             "--llm-port", str(self.llm_port)],
            cwd=self.script.parent, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited {self.proc.returncode}; see {log.name}")
            try:
                if httpx.get(self.stats_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise SystemExit(f"{self.name} not ready in {timeout_s:.0f}s")
            time.sleep(0.2)
        self.ready_s = time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this bench started
            self.proc.wait(timeout=30)


def measure_peer(name: str, work: Path, wavs: dict[str, Path], turns: int) -> dict[str, Any]:
    python, script = {"pipecat": (PEER_PY, PEERS / "pipecat" / "bot.py"),
                      "livekit": (LK_PY, PEERS / "livekit" / "agent.py")}[name]
    peer = Peer(name, python, script, work)
    peer.start()
    print(f"{name}: ready in {peer.ready_s:.1f}s", flush=True)
    out: dict[str, Any] = {"start_s": round(peer.ready_s, 1)}
    try:
        assert peer.proc is not None
        with TreeMemory(peer.proc.pid) as mem:
            for line, wav in wavs.items():
                run = run_client(wav, turns=turns, url=peer.url, stats_url=peer.stats_url,
                                 json_out=work / f"{name}-{line}.json",
                                 log=work / f"{name}-client.log")
                out[line] = summarize(run, turns)
                print(f"{name} {line}: {out[line]}", flush=True)
        out["pss_peak_mib"] = round(mem.peak_mib)
    finally:
        peer.stop()
    return out


def measure_aico(work: Path, wavs: dict[str, Path], turns: int, *, concurrency: int,
                 in_a_row: int) -> dict[str, Any]:
    up = voice.AicoUp(log_path=work / "aico-up.log", pool_size=max(2, concurrency))
    up.start()
    print(f"aico: up in {up.up_s:.1f}s ({up.api})", flush=True)
    out: dict[str, Any] = {"start_s": round(up.up_s, 1)}
    try:
        flow_id = asyncio.run(_publish(up.api, up.token))
        body = shlex.quote(json.dumps({"channel": "voice"}))
        parse = shlex.quote("import json,sys; print(json.load(sys.stdin)['voice']['url'])")
        url_cmd = (f"curl -s -X POST -H 'Authorization: Bearer {up.token}' -H "
                   f"'Content-Type: application/json' -d {body} "
                   f"{up.api}/v1/flows/{flow_id}/sessions | python3 -c {parse}")
        assert up.proc is not None
        with TreeMemory(up.proc.pid, also=str(up.home)) as mem:
            for line, wav in wavs.items():
                run = run_client(wav, turns=turns, url_cmd=url_cmd,
                                 json_out=work / f"aico-{line}.json",
                                 log=work / "aico-client.log")
                out[line] = summarize(run, turns)
                print(f"aico {line}: {out[line]}", flush=True)
            out["pss_peak_mib"] = round(mem.peak_mib)
            try:
                out.update(asyncio.run(_live(up, concurrency=concurrency, in_a_row=in_a_row,
                                             caller=voice.read_wav16k(wavs["question"]))))
            except Exception as err:  # noqa: BLE001 - the side-by-side figures still count
                out["live_error"] = repr(err)[:500]
                print("aico live part failed:", out["live_error"], flush=True)
            out["pss_peak_mib_with_callers"] = round(mem.peak_mib)
    finally:
        up.stop()
    return out


async def _publish(api: str, token: str) -> str:
    client = voice.AicoClient(api, token)
    try:
        return str(await client.publish(peer_like_flow()))
    finally:
        await client.aclose()


async def _live(up: Any, *, concurrency: int, in_a_row: int, caller: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    client = voice.AicoClient(up.api, up.token)
    client.root_pid = up.proc.pid
    try:
        await client.publish(peer_like_flow())
        if concurrency:
            out["concurrency"] = await voice.concurrent_callers(
                client, caller, callers=concurrency, turns=3)
            print("aico concurrency:", json.dumps(out["concurrency"]), flush=True)
        if in_a_row:
            out["in_a_row"] = await voice.calls_in_a_row(client, caller, calls=in_a_row)
            print("aico in a row:", json.dumps(out["in_a_row"]), flush=True)
    finally:
        await client.aclose()
    return out


def _pair(a: Any, b: Any, unit: str = " ms") -> str:
    return f"{a if a is not None else '–'} / {b if b is not None else '–'}{unit}"


def table(results: dict[str, dict[str, Any]]) -> str:
    names = {"aico": "AICO", "livekit": "LiveKit Agents 1.8.9", "pipecat": "Pipecat 1.14"}
    lines = [("| | 3.4 s question: v2v p50 / p95, answered | one-word answer: v2v p50 / p95, "
             "answered | connect → greeting p50 (turns 2–N) | first call after start: "
             "connect → greeting | peak memory (PSS, whole system) |"),
             "| --- | --- | --- | --- | --- | --- |"]
    for key in ("aico", "livekit", "pipecat"):
        r = results.get(key)
        if not r:
            continue
        if "error" in r:
            lines.append(f"| {names[key]} | failed: {r['error'][:120]} | | | | |")
            continue
        q, w = r.get("question", {}), r.get("one_word", {})
        warm = q.get("greeting_ms", [])[1:] + w.get("greeting_ms", [])
        first = q.get("greeting_ms", [None])[0] if q.get("greeting_ms") else None
        cells = [
            f"{_pair(q.get('v2v_p50'), q.get('v2v_p95'))}, {q.get('answered')}/{q.get('asked')}",
            f"{_pair(w.get('v2v_p50'), w.get('v2v_p95'))}, {w.get('answered')}/{w.get('asked')}",
            f"{pct(warm, 50) if warm else '–'} ms" + (
                f" (+ session creation {q['session_create_ms_p50']} ms)"
                if q.get("session_create_ms_p50") else ""),
            f"{first} ms" if first is not None else "–",
            f"{r.get('pss_peak_mib', '–')} MiB",
        ]
        lines.append(f"| {names[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def live_table(r: dict[str, Any]) -> str:
    lines = []
    c = r.get("concurrency")
    if c:
        lines += [(f"| callers at once (dialing {c['stagger_s']} s apart) | turns answered | v2v p50 / p95 | call actor PSS p50 / max |"
                  " PSS per call p50 / max (calls an actor, max) | call actors live (max) |"),
                  "| --- | --- | --- | --- | --- | --- |",
                  (f"| {c['callers']} | {c['turns_answered']}/{c['turns_asked']} | "
                  f"{_pair(c['v2v_ms_p50'], c['v2v_ms_p95'])} | "
                  f"{_pair(c['call_actor_pss_mib_p50'], c['call_actor_pss_mib_max'], ' MiB')} | "
                  f"{_pair(c.get('pss_mib_per_call_p50'), c.get('pss_mib_per_call_max'), ' MiB')}"
                  f" ({c.get('calls_per_live_actor_max', '–')}) | "
                  f"{c['call_actors_live_max']} |")]
        by_round = c.get("v2v_ms_p50_p95_by_round")
        if by_round:
            lines += ["", "v2v p50 / p95 by round (every caller's first turn, then the second...): "
                      + ", ".join(_pair(p50, p95) for p50, p95 in by_round)]
    a = r.get("in_a_row")
    if a:
        lines += ["", ("| calls in a row (hang up at the greeting) | greeted | connect → greeting p50 / p95"
                       " | busiest call actor PSS: first 5 / last 5 calls (mean) | max |"),
                  "| --- | --- | --- | --- | --- |",
                  (f"| {a['calls']} | {a['greeted']}/{a['calls']} | "
                   f"{_pair(a['greeting_ms_p50'], a['greeting_ms_p95'])} | "
                   f"{_pair(a['first5_mean_mib'], a['last5_mean_mib'], ' MiB')} | "
                   f"{max(a['call_actor_pss_mib_max_per_call'], default=0)} MiB |")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--only", default="aico,livekit,pipecat")
    ap.add_argument("--concurrency", type=int, default=0)
    ap.add_argument("--in-a-row", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aico-side-by-side-"))
    wavs = {"question": voice.espeak_wav(work / "question.wav", voice.CALLER_LINE),
            "one_word": voice.espeak_wav(work / "one_word.wav", voice.ONE_WORD_LINE)}
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"work dir {work}; {uptime_before}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name in args.only.split(","):
        try:
            if name == "aico":
                results[name] = measure_aico(work, wavs, args.turns,
                                             concurrency=args.concurrency, in_a_row=args.in_a_row)
            else:
                results[name] = measure_peer(name, work, wavs, args.turns)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the other systems still run
            results[name] = {"error": repr(err)[:500]}
            print(f"{name} failed: {err!r}", flush=True)
        report(results, args.out, work, uptime_before)  # after each system: nothing is lost
    print(report(results, args.out, work, uptime_before), flush=True)
    print(f"raw: {work / 'results.json'}", flush=True)


def report(results: dict[str, dict[str, Any]], out: str, work: Path, uptime_before: str) -> str:
    uptime_now = subprocess.run(["uptime"], capture_output=True, text=True,
                                check=False).stdout.strip()
    text = "\n".join([table(results), "", live_table(results.get("aico", {})), "",
                      f"uptime before: `{uptime_before}`", f"uptime after: `{uptime_now}`"])
    (work / "results.json").write_text(json.dumps(results, indent=1))
    if out:
        Path(out).write_text(text + "\n\n<details><summary>raw figures</summary>\n\n```json\n"
                             + json.dumps(results, indent=1) + "\n```\n</details>\n")
    return text


if __name__ == "__main__":
    main()
