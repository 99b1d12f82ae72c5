"""End of turn on finished and trailing utterances: smart-turn v3.2 next to silence alone.

    .venv/bin/python bench/end_of_turn.py [--speeds 0.9 1.0 1.2]

Each utterance is spoken by Piper (joe, at each speed), put behind 0.3 s of silence and followed
by silence, and fed in 20 ms frames to the Silero VAD with the turn detector's settings. Where
the VAD reports the pause (`PAUSE_S` of silence), the audio so far goes to the end-of-turn model,
as the turn detector does. A trailing utterance ("my account number is") judged complete is a
FALSE CUT-OFF (the caller would be interrupted while thinking); a finished one judged incomplete
is a FALSE HOLD (the turn waits for the fallback silence, `end_of_turn_silence_s`). Silence
alone cuts off every trailing utterance whose thinking pause is longer than that silence.
Trailing utterances are spoken three ways: bare words, ending in a comma, and ending in
", um" (a filler, as callers who are not done say). Prints counts, the end-of-turn delay each
policy gives (speech end → turn ended) and the model's inference time. Figures vary ±30-50 %
with what else runs on the box.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.turns import PAUSE_S, PREROLL_S, RATE
from providers.pcm import resample_pcm16
from providers.turn_model import COMPLETE_ABOVE, EndOfTurnModel
from providers.vad import SileroVAD, VADOptions

COMPLETE = [
    "My account number is four five six seven.",
    "I'd like to book a table for two.",
    "What time do you open tomorrow?",
    "Yes, please.",
    "No, thank you.",
    "I want to cancel my order.",
    "Can you tell me about the pricing?",
    "My name is John Smith.",
    "That's all, goodbye.",
    "I need to speak with a manager.",
    "The address is twelve Main Street.",
    "Please send it to my email.",
    "How much does it cost?",
    "I was charged twice for the same order.",
    "Thanks, that's perfect.",
    "Could you repeat that?",
    "Book it for Friday at seven.",
    "I'm calling about my bill.",
    "Yes.",
    "Okay, sounds good.",
]
TRAILING = [
    "My account number is",
    "I'd like to book a table for",
    "The address is twelve",
    "I was wondering if",
    "Can you tell me about the",
    "My name is John and I",
    "I want to change my",
    "Well, um, I think that",
    "So the problem is that",
    "I need to speak with",
    "The card ends in four five",
    "I'm calling because",
    "Could you send it to",
    "My date of birth is March",
    "I would like to",
    "It happened on",
    "And then",
    "The order number is seven two",
    "I was charged twice for",
    "What I really want is",
]
FRAME = int(0.02 * RATE) * 2


def speak(voice, text: str, length_scale: float) -> bytes:
    from piper import SynthesisConfig

    pcm = b"".join(c.audio_int16_bytes for c in voice.synthesize(
        text, syn_config=SynthesisConfig(length_scale=length_scale)))
    return resample_pcm16(pcm, voice.config.sample_rate, RATE)


def audio_at_pause(pcm: bytes, vad: SileroVAD,
                   pause_s: float = PAUSE_S) -> tuple[bytes, float] | None:
    """The audio up to where the VAD reports the pause, and the speech end (s) it implies."""
    detector = vad.detector(sample_rate=RATE)
    stream = b"\0\0" * int(PREROLL_S * RATE) + pcm + b"\0\0" * int(1.0 * RATE)
    started = False
    for i in range(0, len(stream), FRAME):
        for event in detector.push(stream[i:i + FRAME]):
            if event.type == "speech_start":
                started = True
            elif started:
                end = i + FRAME
                return stream[:end], end / (2 * RATE) - pause_s
    return None


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speeds", type=float, nargs="+", default=[0.9, 1.0, 1.2])
    parser.add_argument("--fallback", type=float, nargs="+", default=[0.45, 0.8, 1.2])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--compare-pauses", type=float, nargs="*", default=[],
                        help="also ask the model at these pauses (s), on the same audio")
    args = parser.parse_args()

    from piper import PiperVoice

    from providers.piper_tts import packaged_voice_path

    voice = PiperVoice.load(packaged_voice_path())
    vad = SileroVAD.load(options=VADOptions(min_speech_s=0.06, min_silence_s=PAUSE_S))
    model = EndOfTurnModel.load()
    model.completeness_sync(b"\0\0" * RATE)  # the first run allocates
    other_vads = {pause: SileroVAD.load(options=VADOptions(min_speech_s=0.06, min_silence_s=pause))
                  for pause in args.compare_pauses}
    # pause -> set -> [(label, p)]: the same utterances judged at another pause
    compared: dict[float, dict[str, list[tuple[str, float]]]] = {
        pause: {k: [] for k in ("complete", "trailing", "trailing,", "trailing um")}
        for pause in args.compare_pauses}

    sets = {"complete": [(t, t) for t in COMPLETE],
            "trailing": [(t, t) for t in TRAILING],
            "trailing,": [(t, t + ",") for t in TRAILING],
            "trailing um": [(t, t + ", um") for t in TRAILING]}
    results: dict[str, list[tuple[str, float, float]]] = {k: [] for k in sets}
    infer_s: list[float] = []
    for speed in args.speeds:
        for name, items in sets.items():
            for label, text in items:
                spoken = speak(voice, text, speed)
                for pause, other in other_vads.items():
                    at = audio_at_pause(spoken, other, pause)
                    if at is not None:
                        compared[pause][name].append(
                            (f"{label} @{speed}", model.completeness_sync(at[0])))
                cut = audio_at_pause(spoken, vad)
                if cut is None:
                    print(f"  no pause found: {text!r} @ {speed}")
                    continue
                pcm, _speech_end = cut
                started = time.perf_counter()
                p = model.completeness_sync(pcm)
                infer_s.append(time.perf_counter() - started)
                results[name].append((f"{label} @{speed}", p, infer_s[-1]))

    print(f"\nutterances: {len(COMPLETE)} finished, {len(TRAILING)} trailing (×3 spoken forms), "
          f"Piper joe at speeds {args.speeds}; complete above p = {COMPLETE_ABOVE}")
    print(f"model inference: p50 {med(infer_s) * 1000:.0f} ms, p95 {pct(infer_s, 95) * 1000:.0f} "
          f"ms (n={len(infer_s)}, one onnxruntime thread)")
    fin = results["complete"]
    holds = [r for r in fin if r[1] <= COMPLETE_ABOVE]
    print(f"\nfinished utterances judged incomplete (false holds): {len(holds)}/{len(fin)}")
    for label, p, _ in holds:
        print(f"    p={p:.2f}  {label}")
    forms = {"trailing": "bare words", "trailing,": "ending in a comma",
             "trailing um": "ending in ', um'"}
    for name, form in forms.items():
        rows = results[name]
        cuts = [r for r in rows if r[1] > COMPLETE_ABOVE]
        print(f"trailing utterances ({form}) judged complete "
              f"(false cut-offs): {len(cuts)}/{len(rows)}")
        for label, p, _ in cuts:
            print(f"    p={p:.2f}  {label}")

    print("\nother thresholds (the model's is 0.5): false holds / false cut-offs")
    everything_trailing = [r for name in forms for r in results[name]]
    for threshold in args.thresholds:
        held = sum(1 for _, p, _ in fin if p <= threshold)
        cut_early = sum(1 for _, p, _ in everything_trailing if p > threshold)
        print(f"  complete above {threshold:.2f}: {held}/{len(fin)} / "
              f"{cut_early}/{len(everything_trailing)}")

    if compared:
        print(f"\nthe same audio judged at other pauses (false holds / false cut-offs; at "
              f"{PAUSE_S:.2f} s: {len(holds)}/{len(fin)} / "
              f"{sum(1 for n in forms for r in results[n] if r[1] > COMPLETE_ABOVE)}"
              f"/{sum(len(results[n]) for n in forms)}):")
    for pause, judged in compared.items():
        held = sum(1 for _, p in judged["complete"] if p <= COMPLETE_ABOVE)
        trailing_p = [p for n in forms for _, p in judged[n]]
        print(f"  pause {pause:.3f} s: {held}/{len(judged['complete'])} / "
              f"{sum(1 for p in trailing_p if p > COMPLETE_ABOVE)}/{len(trailing_p)}")

    print("\nend-of-turn delay after the caller's last word, finished utterances "
          "(a verdict of finished arrives PAUSE_S + that utterance's inference after speech end):")
    for fallback in args.fallback:
        # The silence still ends the turn while the model is busy: a verdict later than the
        # fallback changes nothing.
        delays = [min(PAUSE_S + spent, fallback) if p > COMPLETE_ABOVE else fallback
                  for _, p, spent in fin]
        trailing = [r for name in forms for r in results[name]]
        cut_off = sum(1 for _, p, _ in trailing if p > COMPLETE_ABOVE)
        print(f"  silence {fallback:.2f} s alone: every turn {fallback * 1000:.0f} ms; trailing "
              f"cut off only when the caller pauses longer than {fallback:.2f} s")
        print(f"  model + fallback {fallback:.2f} s: p50 {med(delays) * 1000:.0f} ms, "
              f"p95 {pct(delays, 95) * 1000:.0f} ms; trailing cut off at the first pause: "
              f"{cut_off}/{len(trailing)}")

if __name__ == "__main__":
    main()
