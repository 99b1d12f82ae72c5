"""Provider benchmark: each offline model directly (in this process) and through its Ray Serve
deployment handle, so the deployment's overhead is visible.

    .venv/bin/python bench/providers.py [--rounds 3] [--skip-serve]

Prints STT latency and real-time factor per utterance, TTS time to first audio and RTF,
LLM time to first token and tokens/s, embeddings per second. RTF = processing time / audio
duration (below 1 is faster than real time). Figures vary run to run: report medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.llm import ChatMessage
from providers.runtime import forget_models, open_embeddings, open_llm, open_stt, open_tts

UTTERANCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning.",
    "I would like to book a table for two people at seven in the evening, near the window.",
]
TTS_TEXT = ("Thanks for calling. Your appointment is confirmed for Tuesday at ten. "
            "Is there anything else I can help you with today?")
LLM_PROMPT = [ChatMessage(role="system", content="You are a concise phone assistant."),
              ChatMessage(role="user", content="Give me three tips for a good night's sleep.")]
EMBED_TEXTS = [f"Customer {i} asked about order status and delivery times." for i in range(64)]
CONFIGS = {"stt": {"kind": "faster-whisper"}, "llm": {"kind": "llamacpp", "temperature": 0.0},
           "tts": {"kind": "piper"}, "embeddings": {"kind": "minilm"}}


def med(values: list[float]) -> float:
    return statistics.median(values)


async def bench(label: str, rounds: int, utterance_audio: list[tuple[bytes, int]] | None
                ) -> list[tuple[bytes, int]]:
    tts = await open_tts(CONFIGS["tts"], secrets={})
    stt = await open_stt(CONFIGS["stt"], secrets={})
    llm = await open_llm(CONFIGS["llm"], secrets={})
    emb = await open_embeddings(CONFIGS["embeddings"], secrets={})
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== {label} (load average {load} on {os.cpu_count()} CPUs): tts={type(tts).__name__} stt={type(stt).__name__} "
          f"llm={type(llm).__name__} embeddings={type(emb).__name__}")

    # Warm every path once (first calls pay allocation and graph set-up).
    async for _ in tts.synthesize("Warm up."):
        pass
    await stt.recognize(b"\0\0" * 16000, sample_rate=16000)
    await llm.complete([ChatMessage(role="user", content="hi")], max_tokens=4)
    await emb.embed(["warm up"])

    # TTS: time to first audio and RTF, sentence-streamed like a voice turn.
    ttfa, rtf = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        first = None
        audio_s = 0.0
        async with tts.stream() as stream:
            stream.push_text(TTS_TEXT)
            stream.end_input()
            async for frame in stream:
                first = first or time.perf_counter() - start
                audio_s += frame.duration_s
        total = time.perf_counter() - start
        ttfa.append(first or 0.0)
        rtf.append(total / audio_s)
    print(f"TTS piper      first audio {med(ttfa) * 1000:7.0f} ms   RTF {med(rtf):.3f}   "
          f"({audio_s:.1f} s of audio, median of {rounds})")

    # STT: latency and RTF per utterance (audio made by Piper once, reused for both paths).
    if utterance_audio is None:
        utterance_audio = []
        for text in UTTERANCES:
            pcm = b"".join([f.pcm16 async for f in tts.synthesize(text)])
            utterance_audio.append((pcm, tts.sample_rate))
    for text, (pcm, rate) in zip(UTTERANCES, utterance_audio, strict=True):
        duration = len(pcm) / (2 * rate)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            result = await stt.recognize(pcm, sample_rate=rate)
            times.append(time.perf_counter() - start)
        print(f"STT whisper    {duration:4.1f} s utterance  latency {med(times) * 1000:6.0f} ms"
              f"   RTF {med(times) / duration:.3f}   {result.text[:40]!r}")

    # LLM: time to first token and decode speed.
    ttft, tps = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        first = None
        async for chunk in llm.chat(LLM_PROMPT, max_tokens=96, temperature=0.0):
            if chunk.text and first is None:
                first = time.perf_counter()
            usage = chunk.usage or None
            if usage:
                tokens = usage.completion_tokens
        end = time.perf_counter()
        ttft.append((first or end) - start)
        tps.append(max(tokens - 1, 1) / max(end - (first or start), 1e-6))
    print(f"LLM smollm2    first token {med(ttft) * 1000:6.0f} ms   {med(tps):6.1f} tokens/s   "
          f"({tokens} tokens)")

    # Embeddings: throughput on batches of 32 (the provider's batch size).
    per_s = []
    for _ in range(rounds):
        start = time.perf_counter()
        await emb.embed(EMBED_TEXTS)
        per_s.append(len(EMBED_TEXTS) / (time.perf_counter() - start))
    print(f"Embeddings     {med(per_s):7.1f} sentences/s  (minilm, numpy, batches of 32)")
    return utterance_audio


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()

    os.environ["AICO_MODELS"] = "inprocess"
    audio = await bench("direct (in-process)", args.rounds, None)
    forget_models()
    if args.skip_serve:
        return

    import ray
    from ray import serve

    from serve_apps.models import build_models_app

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    serve.run(build_models_app(providers=CONFIGS), name="models", route_prefix=None)
    print(f"\n(ray.init + models app up in {time.perf_counter() - started:.1f} s)")
    os.environ["AICO_MODELS"] = "serve"
    try:
        handle = serve.get_deployment_handle("stt", app_name="models")
        await handle.model_key.remote()
        trips = []
        for _ in range(20):
            start = time.perf_counter()
            await handle.model_key.remote()
            trips.append(time.perf_counter() - start)
        print(f"\nHandle round trip (trivial method): p50 {med(trips) * 1000:.1f} ms")
        await bench("Ray Serve deployment handles", args.rounds, audio)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
