"""Benchmark: time from `aico up` to a healthy /healthz, and resident memory once idle.

    .venv/bin/python bench/startup.py [--runs 2] [--idle-s 20]

Each run uses a fresh AICO_HOME (a cold first start: initdb, migrations, seed) and then restarts
on the same home (a warm start). Memory is the summed RSS and PSS of `aico up` and every process
it started (PostgreSQL, Ray's GCS/raylet, Serve controller, proxy and replicas), after idling.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

AICO = Path(sys.executable).parent / "aico"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_memory(root: psutil.Process) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, process count) of `root`, its descendants and the postgres it owns."""
    procs = {root.pid: root}
    for child in root.children(recursive=True):
        procs[child.pid] = child
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "postgres" in (p.info["name"] or "") or "raylet" in cmd or "gcs_server" in cmd:
            procs.setdefault(p.pid, p)
    rss = pss = 0
    for p in procs.values():
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss / 2**20, pss / 2**20, len(procs)


def one_start(home: Path, idle_s: float) -> tuple[float, tuple[float, float, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICO_")}
    env.update(AICO_HOME=str(home), AICO_PORT=str(port))
    log = (home.parent / "up.log").open("ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(AICO), "up"], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"aico up exited {proc.returncode}; see {home.parent / 'up.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        took = time.perf_counter() - t0
        time.sleep(idle_s)
        mem = tree_memory(psutil.Process(proc.pid))
        return took, mem
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--idle-s", type=float, default=20.0)
    args = parser.parse_args()
    for run in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="aico-bench-")) / "home"
        for label in ("first start (fresh home)", "restart (same home)"):
            took, (rss, pss, n) = one_start(home, args.idle_s)
            print(f"run {run + 1} {label:26s} healthy in {took:5.1f}s · idle after {args.idle_s:.0f}s:"
                  f" RSS {rss:7.0f} MiB, PSS {pss:7.0f} MiB over {n} processes", flush=True)


if __name__ == "__main__":
    main()
