"""Self-hosted speech models side by side, in this process: Vosk next to Whisper (STT), Kokoro
next to Piper (TTS). Needs the test models (`./dev.sh test` installs them) and espeak-ng.

    .venv/bin/python bench/speech_models.py [--rounds 3]

STT: load time; one-shot decode time and RTF (processing / audio); for the streaming Vosk,
the partial-result latency (audio fed at real-time pace in 20 ms frames: from the moment the
frame that completed a word was sent to its partial) and the final's delay after the last frame.
TTS: load time, time to first audio and RTF on a three-sentence text. Whisper hears Piper's
English, Vosk hears espeak-ng's Korean. RTF below 1 is faster than real time. Report medians;
on a shared 2-core box figures move by ±50 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.runtime import open_stt, open_tts

KOREAN = "어서 오세요. 어서 오세요. 어서 오세요."
ENGLISH = "Welcome. Please call me back tomorrow morning."
TTS_TEXTS = {
    "piper": "Thanks for calling. Your appointment is confirmed for Tuesday. Anything else?",
    "kokoro": "お電話ありがとうございます。ご予約は火曜日に確定しました。ほかにご用件はありますか。",
}
FRAME_S = 0.02


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def espeak(text: str) -> tuple[bytes, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "130", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            return w.readframes(w.getnframes()), w.getframerate()


async def timed_open(opener, config: dict) -> tuple[object, float]:
    started = time.perf_counter()
    provider = await opener(config, secrets={})
    return provider, time.perf_counter() - started


async def stt_one_shot(config: dict, pcm: bytes, rate: int, rounds: int
                       ) -> tuple[float, float, str]:
    audio_s = len(pcm) / (2 * rate)
    times, text = [], ""
    for _ in range(rounds):
        # A new provider object each round (the loaded model is shared): Vosk's provider
        # would otherwise reuse its decode of the very same audio.
        stt = await open_stt(config, secrets={})
        started = time.perf_counter()
        text = (await stt.recognize(pcm, sample_rate=rate)).text
        times.append(time.perf_counter() - started)
    return med(times), med(times) / audio_s, text


async def vosk_streaming(stt, pcm: bytes, rate: int) -> tuple[list[float], float]:
    """Partial latencies (s) and the final's delay after the last frame (s), in real time."""
    step = int(rate * FRAME_S) * 2
    sent_at: list[tuple[int, float]] = []  # (bytes sent so far, when)
    latencies: list[float] = []
    final_at = 0.0
    async with stt.stream(sample_rate=rate) as stream:
        async def read() -> None:
            nonlocal final_at
            last = ""
            async for event in stream:
                now = time.perf_counter()
                if event.type == "final":
                    final_at = now
                elif event.text != last:
                    last = event.text
                    # Latency from the newest frame sent when the partial changed.
                    latencies.append(now - sent_at[-1][1])

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        for n, i in enumerate(range(0, len(pcm), step)):
            stream.push_frame(pcm[i:i + step])
            sent_at.append((i + step, time.perf_counter()))
            delay = start + (n + 1) * FRAME_S - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        last_frame = time.perf_counter()
        await stream.flush()
        stream.end_input()
        await reader
    return latencies, final_at - last_frame


async def tts_bench(tts, text: str, rounds: int) -> tuple[float, float, float]:
    firsts, rtfs, audio_s = [], [], 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        first, audio_s = None, 0.0
        async for frame in tts.synthesize(text):
            first = first or time.perf_counter() - started
            audio_s += frame.duration_s
        firsts.append(first or 0.0)
        rtfs.append((time.perf_counter() - started) / audio_s)
    return med(firsts), med(rtfs), audio_s


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["AICO_MODELS"] = "inprocess"
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")

    piper, piper_load = await timed_open(open_tts, {"kind": "piper"})
    kokoro, kokoro_load = await timed_open(open_tts, {"kind": "kokoro"})
    whisper, whisper_load = await timed_open(open_stt, {"kind": "faster-whisper"})
    vosk, vosk_load = await timed_open(open_stt, {"kind": "vosk"})
    await whisper.recognize(b"\0\0" * 16000, sample_rate=16000)  # first-decode allocation
    await vosk.recognize(b"\0\0" * 16000, sample_rate=16000)

    for name, tts, load in (("piper", piper, piper_load), ("kokoro", kokoro, kokoro_load)):
        async for _ in tts.synthesize("テスト。" if name == "kokoro" else "Test."):
            pass
        first, rtf, audio_s = await tts_bench(tts, TTS_TEXTS[name], args.rounds)
        print(f"tts {name:14s} load {load:5.2f}s  first audio {first * 1000:6.0f} ms  "
              f"RTF {rtf:.2f}  ({audio_s:.1f}s of audio, {tts.sample_rate} Hz)")

    english = b"".join([f.pcm16 async for f in piper.synthesize(ENGLISH)])
    took, rtf, text = await stt_one_shot({"kind": "faster-whisper"}, english,
                                         piper.sample_rate, args.rounds)
    print(f"stt faster-whisper load {whisper_load:5.2f}s  one-shot {took * 1000:6.0f} ms  "
          f"RTF {rtf:.2f}  heard {text!r}")
    korean, rate = espeak(KOREAN)
    took, rtf, text = await stt_one_shot({"kind": "vosk"}, korean, rate, args.rounds)
    print(f"stt vosk         load {vosk_load:5.2f}s  one-shot {took * 1000:6.0f} ms  "
          f"RTF {rtf:.2f}  heard {text!r}")
    partials, final_delay = await vosk_streaming(vosk, korean, rate)
    print(f"stt vosk streaming: {len(partials)} partials over {len(korean) / (2 * rate):.1f}s, "
          f"partial latency p50 {med(partials) * 1000:.0f} ms max {max(partials) * 1000:.0f} ms,"
          f" final {final_delay * 1000:.0f} ms after the last frame")


if __name__ == "__main__":
    asyncio.run(main())
