"""Connect → greeting: how soon a caller hears the agent after the WebSocket opens.

    .venv/bin/python bench/greeting.py --calls 10            # `aico up` in a fresh home
    .venv/bin/python bench/greeting.py --calls 10 --api http://127.0.0.1:8000 --token T

A flow whose greeting is one `say` is published; then calls are placed one after another, each
with its token already issued (`POST /v1/flows/{id}/sessions` before the clock starts), timed
from the WebSocket connect to the first non-silent agent frame, and hung up there. With
`aico up` started here, the first call is the first one after start (the flow was published
on a server that had just come up). Prints the figures as JSON: every call, p50 and p95 of the
calls after the first, and `uptime` before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "voice")]

from voice import AicoClient, AicoUp, pct
from voice_call_client import CallClient

GREETING = "Hello! Say billing or support."


def greeting_flow() -> dict[str, Any]:
    return {"name": "Greeting bench", "variables": {"q": {"type": "string", "default": ""}},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "greet", "type": "say", "text": GREETING},
                      {"id": "listen", "type": "listen", "into": "q"}],
            "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"}]}


async def one_call(client: AicoClient) -> dict[str, Any]:
    url = await client.voice_url()  # the session and its token: before the clock starts
    async with CallClient(url) as call:
        await call.wait_agent_quiet(since=call.connected_at, quiet_s=0.0, timeout=120)
        first = call.first_audio_after(call.connected_at)
        ready = next((t for t, e in call.events if e.get("type") == "ready"), None)
    return {"greeting_ms": round((first - call.connected_at) * 1000) if first else None,
            "ready_ms": round((ready - call.connected_at) * 1000) if ready else None}


async def run(api: str, token: str, calls: int, pause_s: float) -> dict[str, Any]:
    client = AicoClient(api, token)
    try:
        await client.publish(greeting_flow())
        rows = []
        for _ in range(calls):
            rows.append(await one_call(client))
            await asyncio.sleep(pause_s)  # the actor goes back to the pool between calls
    finally:
        await client.aclose()
    warm = [float(r["greeting_ms"]) for r in rows[1:] if r["greeting_ms"] is not None]
    return {"calls": rows, "first_call_greeting_ms": rows[0]["greeting_ms"] if rows else None,
            "warm_greeting_ms_p50": pct(warm, 50), "warm_greeting_ms_p95": pct(warm, 95)}


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between calls")
    parser.add_argument("--api", help="a running AICO (else `aico up` is started here)")
    parser.add_argument("--token", default=os.environ.get("AICO_TOKEN", ""))
    args = parser.parse_args()
    uptime_before = uptime()
    server: AicoUp | None = None
    api, token = args.api, args.token
    if not api:
        server = AicoUp(log_path=Path("/tmp") / f"aico-greeting-bench-{os.getpid()}.log")
        server.start()
        api, token = server.api, server.token
    try:
        started = time.monotonic()
        result = asyncio.run(run(api, token, args.calls, args.pause))
        result["bench_s"] = round(time.monotonic() - started, 1)
    finally:
        if server is not None:
            server.stop()
    result["uptime_before"] = uptime_before
    result["uptime_after"] = uptime()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
