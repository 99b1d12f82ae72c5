"""A call process stays small: its ONNX models keep no arena, what a verdict frees goes back
to the OS (the process is as big after many turns as after one), the VAD still hears Piper
speech with those session options, and the call actor imports no model library and no part of
the API it does not run (bench/call_memory.py measures the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from actors.call_providers import load_vad

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> dict:
    """Run `code` in a fresh interpreter (a process of its own, like a call actor's) and
    return the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_the_vad_hears_piper_speech_with_its_lean_session(voices):
    vad = load_vad()
    options = vad._session.get_session_options()
    assert options.enable_cpu_mem_arena is False and options.enable_mem_pattern is False
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)

    detector = vad.detector(sample_rate=16000)
    speech = await voices.caller("I would like to change the address on my account, please.")
    silence = b"\0\0" * 16000
    audio = silence + speech + silence
    events = []
    for i in range(0, len(audio), 640):  # 20 ms frames, as a transport delivers them
        events += detector.push(audio[i:i + 640])
    assert [e.type for e in events] == ["speech_start", "speech_end"]
    assert 0.9 < events[0].at_s < 1.5  # after the leading second of silence
    assert events[1].at_s > len(speech) / 32000  # not before the caller's last word


def test_end_of_turn_verdicts_leave_no_memory_behind():
    """Each turn asks the end-of-turn model once: a verdict's buffers (≈30 MiB for an 8 s
    window) must not stay with the process, nor pile up over many turns."""
    result = run_python("""
        import asyncio, json, os
        import numpy as np
        from actors.call_providers import load_vad
        from actors.turns import load_end_of_turn_model
        from providers.onnx_session import return_large_buffers_to_os
        from providers.turn_model import on_model_thread

        def anon_mib():
            with open(f"/proc/{os.getpid()}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss_Anon:"):
                        return int(line.split()[1]) / 1024

        async def main():
            return_large_buffers_to_os()  # what VoiceSession._warm_up does
            load_vad()
            model = await on_model_thread(load_end_of_turn_model)
            loaded = anon_mib()
            rng = np.random.default_rng(3)
            turn = (rng.standard_normal(16000 * 8) * 3000).astype("<i2").tobytes()
            await model.completeness(turn)
            await on_model_thread(lambda: None)  # the trim queued after the verdict
            first = anon_mib()
            for _ in range(10):
                await model.completeness(turn)
            await on_model_thread(lambda: None)
            print(json.dumps({"loaded": loaded, "first": first, "eleventh": anon_mib()}))

        asyncio.run(main())
    """)
    assert result["first"] - result["loaded"] < 8, result
    assert result["eleventh"] - result["first"] < 4, result


def test_the_call_actor_imports_no_model_library_and_no_api():
    """The call actor's modules (the module, and what its methods import) leave the models to
    the `models` Serve app, the API to its replicas, and each cloud SDK to the calls that use
    it: none of them is imported into every call process."""
    result = run_python("""
        import importlib, json, sys
        for name in ["actors.voice_session", "actors.call_metrics", "actors.call_providers",
                     "actors.metrics_hub", "aico.metrics", "aico.settings", "db.pool",
                     "actors.pipeline", "actors.outbox", "flows.sessions",
                     "providers.runtime", "providers.serve_clients"]:
            importlib.import_module(name)
        from actors.call_providers import load_vad
        from actors.turns import load_end_of_turn_model
        load_vad()
        load_end_of_turn_model()
        print(json.dumps(sorted(sys.modules)))
    """)
    loaded = {name.split(".")[0] for name in result} | set(result)
    assert "onnxruntime" in loaded  # the VAD and end-of-turn sessions are in this process
    absent = ["serve_apps", "cli", "fastapi", "starlette", "uvicorn",  # the API
              "faster_whisper", "ctranslate2", "piper", "xllamacpp", "tokenizers",  # models
              "safetensors", "torch", "pipecat", "livekit.plugins.silero",
              "twilio", "openai", "av"]  # SDKs of providers and channels a call may not use
    assert [name for name in absent if name in loaded] == []
