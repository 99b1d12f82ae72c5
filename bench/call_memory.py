"""Memory of a call actor's process (PSS), stage by stage, and over many calls in a row.

    .venv/bin/python bench/call_memory.py                  # 50 calls in a row
    .venv/bin/python bench/call_memory.py --calls 10 --json out.json
    # an older tree: a worktree of it with this script copied in, run with this venv's python
    PY="$PWD/.venv/bin/python"; git worktree add ../before <commit> \
        && cp bench/call_memory.py ../before/bench/ && (cd ../before && "$PY" bench/call_memory.py)

A Ray worker like the `VoiceSession` actor's (`num_cpus=0`, on its own local Ray started
here) reads its PSS from /proc/self/smaps_rollup:

1. after the worker starts (Python + Ray's core worker),
2. after importing what the call actor imports (`actors.voice_session`, then every module its
   `warm` / `attach` import: the pipeline, the session service, the database pool, metrics),
3. after `ray.serve`'s handle (how the actor reaches the `models` app's STT / TTS / LLM),
4. after the process's VAD and end-of-turn ONNX sessions are loaded,
5. during and after each of `--calls` calls in a row: a fresh speech detector fed 3 s of Piper
   speech in 20 ms frames (as a transport delivers it), and the end-of-turn model asked once
   at the pause, as a turn does.

It does not open a database pool or the `models` app (which live in their own processes);
the pool's connections add ≈1 MiB. It prints the stages and the biggest top-level packages
that each stage imported (counted by module, not bytes: Python cannot attribute memory to a
package), and the VAD's time per 32 ms window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from typing import Any

import ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository's packages, not bench/providers.py

# What the VoiceSession actor imports, in its module and in its methods (`warm`, `attach`,
# `outbound`): keep in step with actors/voice_session.py.
CALL_ACTOR_IMPORTS = ["actors.voice_session", "actors.call_metrics", "actors.call_providers",
                      "actors.metrics_hub", "aico.metrics", "aico.settings", "db.pool",
                      "actors.pipeline", "actors.outbox", "flows.sessions",
                      "providers.runtime", "providers.serve_clients"]


def memory_kib() -> dict[str, int]:
    """This process's smaps_rollup lines (KiB): Rss, Pss, Pss_Anon, Pss_File, ..."""
    out: dict[str, int] = {}
    with open(f"/proc/{os.getpid()}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


@ray.remote(num_cpus=0)
class CallProcess:
    """Stands in for a `VoiceSession` actor's process (same worker, same imports, same models)."""

    def __init__(self) -> None:
        self._vad: Any = None
        self._turn_model: Any = None

    def memory(self) -> dict[str, Any]:
        return {**memory_kib(), "modules": len(sys.modules)}

    def modules(self) -> list[str]:
        return sorted(sys.modules)

    def import_call_actor(self) -> dict[str, Any]:
        import importlib

        for name in CALL_ACTOR_IMPORTS:
            importlib.import_module(name)
        return self.memory()

    def import_serve_handle(self) -> dict[str, Any]:
        from ray.serve.handle import DeploymentHandle  # noqa: F401 - what serve clients use

        return self.memory()

    async def load_models(self) -> dict[str, Any]:
        from actors.call_providers import load_vad
        from actors.turns import load_end_of_turn_model

        try:  # as VoiceSession._warm_up does (absent before commit ae94420: measure "before")
            from providers.onnx_session import return_large_buffers_to_os
            from providers.turn_model import on_model_thread
        except ImportError:
            self._vad = load_vad()
            self._turn_model = await asyncio.to_thread(load_end_of_turn_model)
            return self.memory()
        return_large_buffers_to_os()
        self._vad = load_vad()
        self._turn_model = await on_model_thread(load_end_of_turn_model)
        return self.memory()

    async def call(self, pcm16: bytes, sample_rate: int) -> dict[str, Any]:
        """One call's audio work: VAD on every frame, the end-of-turn model at the pause."""
        detector = self._vad.detector(sample_rate=sample_rate)
        frame = sample_rate // 50 * 2
        silence = b"\0\0" * (sample_rate // 2)
        audio = silence + pcm16 + silence * 2
        events: list[str] = []
        windows_s = 0.0
        started = time.perf_counter()
        peak = 0
        for i in range(0, len(audio), frame):
            events += [e.type for e in detector.push(audio[i:i + frame])]
            if i % (frame * 25) == 0:
                peak = max(peak, memory_kib()["Pss"])
        windows_s = time.perf_counter() - started
        windows = len(audio) // 2 * 16000 // sample_rate // 512
        from providers.pcm import resample_pcm16

        p = await self._turn_model.completeness(resample_pcm16(pcm16, sample_rate, 16000))
        try:
            from providers.onnx_session import release_freed_memory
        except ImportError:
            pass
        else:
            release_freed_memory()  # as VoiceSession.reset does when a call ends
        mem = self.memory()
        return {**mem, "peak_pss": max(peak, mem["Pss"]), "events": events,
                "completeness": round(p, 3), "vad_ms_per_window": 1000 * windows_s / windows}


def piper_speech(text: str) -> tuple[bytes, int]:
    """Piper speech, made here in the driver (the call process never loads Piper)."""
    from providers.runtime import open_tts

    async def speak() -> tuple[bytes, int]:
        tts = await open_tts({"kind": "piper"}, secrets={})
        frames = [f async for f in tts.synthesize(text)]
        return b"".join(f.pcm16 for f in frames), frames[0].sample_rate

    os.environ["AICO_MODELS"] = "inprocess"  # the driver loads its own Piper
    return asyncio.run(speak())


def top_packages(names: list[str], n: int = 12) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for name in names:
        top = name.split(".")[0]
        counts[top] = counts.get(top, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:n]


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    pcm, rate = piper_speech("I would like to change the address on my account, please.")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    try:
        proc = CallProcess.remote()  # type: ignore[attr-defined]
        stages: dict[str, dict[str, Any]] = {}
        stages["worker started"] = ray.get(proc.memory.remote())
        before = ray.get(proc.modules.remote())
        stages["+ call actor imports"] = ray.get(proc.import_call_actor.remote())
        after_imports = ray.get(proc.modules.remote())
        stages["+ serve handle"] = ray.get(proc.import_serve_handle.remote())
        after_serve = ray.get(proc.modules.remote())
        stages["+ VAD and end-of-turn sessions"] = ray.get(proc.load_models.remote())
        calls = [ray.get(proc.call.remote(pcm, rate)) for _ in range(args.calls)]
    finally:
        ray.shutdown()

    print(f"{'stage':<34} {'PSS':>7} {'anon':>7} {'file':>7} {'RSS':>7} modules  (MiB)")
    for name, m in stages.items():
        print(f"{name:<34} {mib(m['Pss']):>7} {mib(m['Pss_Anon']):>7} {mib(m['Pss_File']):>7} "
              f"{mib(m['Rss']):>7} {m['modules']:>7}")
    last = calls[-1]
    print(f"{'after ' + str(len(calls)) + ' calls':<34} {mib(last['Pss']):>7} "
          f"{mib(last['Pss_Anon']):>7} {mib(last['Pss_File']):>7} {mib(last['Rss']):>7} "
          f"{last['modules']:>7}")
    first5 = statistics.mean(c["peak_pss"] for c in calls[:5])
    last5 = statistics.mean(c["peak_pss"] for c in calls[-5:])
    print(f"peak PSS during a call: first 5 {mib(int(first5))} / last 5 {mib(int(last5))} MiB "
          f"(max {mib(max(c['peak_pss'] for c in calls))})")
    print("VAD per 32 ms window: "
          f"{statistics.median(c['vad_ms_per_window'] for c in calls):.3f} ms median; "
          f"events {calls[0]['events']}, end-of-turn completeness {calls[0]['completeness']}")
    print("imported by the call actor (top-level package: modules):",
          top_packages(sorted(set(after_imports) - set(before))))
    print("imported for the serve handle:", top_packages(sorted(set(after_serve) -
                                                                 set(after_imports))))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"stages": stages, "calls": calls}, f, indent=1)


if __name__ == "__main__":
    main()
