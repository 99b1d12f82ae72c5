"""Word error rate and decode time of Whisper decoded padded (30 s window) vs on the real length.

    .venv/bin/python bench/stt_wer.py [--batch 8] [--show]

Builds the word-error set (`bench/stt_wer_set.py`: 44 lines × 3 voices = 132 utterances of Piper
joe varied), decodes every utterance one at a time with each decode, and prints WER (edit
distance over normalized words / reference words) and decode ms p50/p95 per length bucket:

- padded: faster-whisper's way, features padded to 30 s (the reference);
- unpadded: the real length, tokens bounded by duration, no guard;
- fast, no guard: features padded to at least 6 s (20 s for clips under 2 s) and, from 4 s on,
  to 3x the clip's length, with 0.3 s of silence before the speech and at least 1 s after it;
- guarded: the same with the guard (token bound, loops, too few words) → padded; a variant
  without the 3x rule, and the widths used before 2026-12-01 (8 s, 3x for every clip).

    .venv/bin/python bench/stt_wer.py --decodes "padded;guarded (default)"  # only these

Then the guarded decode in batches of `--batch` (as the STT deployment batches requests): ms per
utterance. Piper samples noise, so the audio (and the WER) differs a little between runs; within a run
every decode hears the same audio. Timings move ±50 % on a shared box.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stt_wer_set import Utterance, build_set, word_errors
from providers.whisper_decode import DecodeGuard, WhisperDecoder

BUCKETS = [(0.0, 1.0, "< 1 s"), (1.0, 2.0, "1-2 s"), (2.0, 4.0, "2-4 s"), (4.0, 99.0, "≥ 4 s")]

DECODES: dict[str, DecodeGuard] = {
    "padded": DecodeGuard(enabled=False),
    "unpadded": DecodeGuard(min_s=0.0, tail_s=0.0, lead_s=0.0, short_min_s=0.0,
                            min_width_ratio=0.0, fallback=False),
    "fast, no guard": DecodeGuard(fallback=False),
    "guarded (default)": DecodeGuard(),
    "guarded, width 8 s / 20 s only": DecodeGuard(min_width_ratio=0.0),
    "guarded, 8 s, 3x from 0 s (before 2026-12-01)": DecodeGuard(min_s=8.0, ratio_from_s=0.0),
}

DEFAULT = "guarded (default)"  # what providers/whisper_decode.py ships


@dataclass
class Tally:
    errors: int = 0
    words: int = 0
    ms: list[float] = field(default_factory=list)
    fallbacks: int = 0
    checks: int = 0

    def wer(self) -> str:
        return f"{100 * self.errors / max(self.words, 1):.1f} %"

    def pct(self, q: float) -> float:
        s = sorted(self.ms)
        return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def bucket(u: Utterance) -> str:
    return next(name for lo, hi, name in BUCKETS if lo <= u.duration_s < hi)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--show", action="store_true", help="print every wrong hypothesis")
    ap.add_argument("--batch-only", action="store_true", help="only batched vs one at a time")
    ap.add_argument("--decodes", default="", help="names of DECODES to run, separated by ;")
    args = ap.parse_args()

    from providers.configs import FasterWhisperConfig
    from providers.faster_whisper_stt import FasterWhisperSTT

    model = FasterWhisperSTT.load_model(FasterWhisperConfig()).model
    t0 = time.perf_counter()
    utterances = list(build_set())
    print(f"set: {len(utterances)} utterances, "
          f"{sum(u.duration_s for u in utterances):.0f} s of audio, "
          f"built in {time.perf_counter() - t0:.1f} s")
    names = ["all"] + [b[2] for b in BUCKETS]
    decodes = {DEFAULT: DECODES[DEFAULT]} if args.batch_only else DECODES
    if args.decodes:
        decodes = {name: DECODES[name] for name in args.decodes.split(";")}
    decoders = {label: WhisperDecoder(model, guard=guard) for label, guard in decodes.items()}
    for decoder in decoders.values():
        decoder.decode([utterances[0].audio], "en")  # warm
    tallies = {label: {n: Tally() for n in names} for label in decodes}
    # Every decode of an utterance runs back to back, so a busy neighbour slows all alike.
    for u in utterances:
        for label, decoder in decoders.items():
            t = time.perf_counter()
            d = decoder.decode([u.audio], "en")[0]
            ms = (time.perf_counter() - t) * 1000
            err, n = word_errors(u.text, d.text)
            for key in ("all", bucket(u)):
                per = tallies[label][key]
                per.errors += err
                per.words += n
                per.ms.append(ms)
                per.fallbacks += d.path == "fallback"
                per.checks += bool(d.guard)
            if args.show and err:
                print(f"  [{label}] {u.voice:9} {u.text!r} → {d.text!r} {d.guard}")
    for label, per_bucket in tallies.items():
        total = per_bucket["all"]
        print(f"{label:28} WER {total.wer():>7}  p50 {total.pct(0.5):5.0f} ms  "
              f"p95 {total.pct(0.95):5.0f} ms  fallbacks {total.fallbacks}")

    counts = {n: sum(1 for u in utterances if n in ("all", bucket(u))) for n in names}
    lines = ["| decode | " + " | ".join(f"{n} ({counts[n]})" for n in names) + " |",
             "| --- |" + " --- |" * len(names)]
    for label, row in tallies.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{row[n].wer()} · {row[n].pct(0.5):.0f}/{row[n].pct(0.95):.0f} ms"
            + (f" · {row[n].fallbacks} fb" if row[n].fallbacks else "")
            + (f" · {row[n].checks} chk" if not decodes[label].fallback and row[n].checks
               else "") for n in names) + " |")

    # Batched vs one at a time, chunk by chunk back to back (same load for both).
    decoder = WhisperDecoder(model, guard=DECODES[DEFAULT])
    batched_ms = single_ms = 0.0
    for i in range(0, len(utterances), args.batch):
        chunk = [u.audio for u in utterances[i:i + args.batch]]
        t = time.perf_counter()
        decoder.decode(chunk, "en")
        batched_ms += (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        for audio in chunk:
            decoder.decode([audio], "en")
        single_ms += (time.perf_counter() - t) * 1000
    batch_line = (f"{DEFAULT}: {batched_ms / len(utterances):.0f} ms per utterance in batches "
                  f"of {args.batch}, {single_ms / len(utterances):.0f} ms one at a time")
    table = "\n".join(lines)
    print(table)
    print(batch_line)


if __name__ == "__main__":
    main()
