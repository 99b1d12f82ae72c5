"""`aico up` as a user runs it: starts everything, serves the API, stops on Ctrl-C, keeps data."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from flows.demo import demo_flow_document
from tests.foundation.flow_docs import greeting_flow

AICO = Path(sys.executable).parent / "aico"


def start_aico(home: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AICO_", "RAY_ADDRESS"))}
    # Port 0: Serve binds a free port and `aico up` says which, so nothing can take it between.
    env.update(AICO_HOME=str(home), AICO_PORT="0")
    return subprocess.Popen([str(AICO), "up"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_up(proc: subprocess.Popen, log: Path, timeout_s: float = 420) -> tuple[str, float]:
    """The base URL the banner names, once /healthz answers there; and how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            pytest.fail(f"aico up exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        # Ready is what the user is told: the banner after every start-up step.
        banner = re.search(r"AICO is up in [0-9.]+s: (http://\S+)", log.read_text())
        if banner:
            base = banner.group(1)
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return base, time.monotonic() - started
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    pytest.fail(f"aico up not healthy after {timeout_s}s:\n{log.read_text()[-3000:]}")


def started_processes(proc: subprocess.Popen, home: Path) -> list[psutil.Process]:
    """What `aico up` runs: its process tree (Ray's GCS, raylet, workers, Serve replicas) and the
    embedded PostgreSQL, which `pg_ctl` detaches from that tree (found by its data folder)."""
    procs = psutil.Process(proc.pid).children(recursive=True)
    for p in psutil.process_iter(["cmdline"]):
        if str(home / "pg") in " ".join(p.info["cmdline"] or []):
            procs += [p, *p.children(recursive=True)]
    return procs


def assert_all_gone(procs: list[psutil.Process], log: Path) -> None:
    _, alive = psutil.wait_procs(procs, timeout=60)
    left = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in alive if p.is_running()]
    assert not left, "left running after Ctrl-C:\n" + "\n".join(left) + log.read_text()[-2000:]


def stop_with_ctrl_c(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"aico up did not stop on Ctrl-C:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_up_serves_the_api_and_keeps_data_across_a_restart(tmp_path: Path):
    home, log = tmp_path / "home", tmp_path / "aico-up.log"

    proc = start_aico(home, log)
    try:
        base, took = wait_up(proc, log)
        print(f"aico up → healthy /healthz in {took:.1f}s")
        running = started_processes(proc, home)
        names = " ".join(" ".join(p.cmdline()) for p in running)
        assert "raylet" in names and "gcs_server" in names and "postgres" in names, names
        token_file = home / "dev-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        flows = http.get("/v1/flows").json()["items"]
        assert [f["name"] for f in flows] == [demo_flow_document()["name"]]
        assert flows[0]["latest_version"] == 1
        created = http.post("/v1/flows", json={"name": "Kept", "document": greeting_flow("Kept")})
        assert created.status_code == 201
        assert http.post(f"/v1/flows/{created.json()['id']}/publish").status_code == 201
    finally:
        stop_with_ctrl_c(proc, log)
    text = log.read_text()
    assert "✓ start embedded PostgreSQL" in text and "Stopped." in text
    # Ctrl-C leaves nothing behind: no Ray process, no PostgreSQL holding the data folder.
    assert_all_gone(running, log)

    log = tmp_path / "aico-up-again.log"
    proc = start_aico(home, log)
    try:
        base, _ = wait_up(proc, log)
        running = started_processes(proc, home)
        assert (home / "dev-token").read_text().strip() == token
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        names = sorted(f["name"] for f in http.get("/v1/flows").json()["items"])
        assert names == sorted([demo_flow_document()["name"], "Kept"])
        kept = next(f for f in http.get("/v1/flows").json()["items"] if f["name"] == "Kept")
        assert kept["latest_version"] == 1
    finally:
        stop_with_ctrl_c(proc, log)
    assert_all_gone(running, log)


@pytest.mark.slow
def test_up_names_the_failed_step(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICO_")}
    env.update(AICO_HOME=str(tmp_path / "h"), AICO_PORT="0",
               AICO_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    out = subprocess.run([str(AICO), "up"], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 1
    assert "step 'create extension vector and apply migrations' failed" in out.stderr


@pytest.mark.slow
def test_ctrl_c_while_starting_stops_what_already_started(tmp_path: Path):
    home, log = tmp_path / "home", tmp_path / "aico-up.log"
    proc = start_aico(home, log)
    try:
        deadline = time.monotonic() + 300
        # PostgreSQL and Ray are up; Serve is being deployed.
        while "… deploy Serve API" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        running = started_processes(proc, home)
        names = " ".join(" ".join(p.cmdline()) for p in running)
        assert "raylet" in names and "postgres" in names, names
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 130, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Interrupted while starting" in log.read_text()
    assert_all_gone(running, log)
    assert not [p for p in psutil.process_iter(["cmdline"])
                if str(home / "pg") in " ".join(p.info["cmdline"] or [])]
