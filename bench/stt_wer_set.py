"""The word-error set for Whisper decoding, built at bench time (no committed audio).

44 caller lines written for AICO (names, numbers, yes/no, "mm-hm", questions, one word to ~6 s),
each spoken by three of six "voices". Piper's joe is the only English voice that ships offline, so
the voices are joe varied: Piper's own length/noise scales (pace, timbre, prosody jitter), a
pitch-and-speed shift by resampling (the waveform replayed at another rate), and one that goes
through an 8 kHz telephone band with a little hiss. Piper samples its noise, so each build
differs slightly.

    from bench.stt_wer_set import build_set
    for u in build_set(): u.text, u.voice, u.audio  # float32, 16 kHz
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from providers import pcm

RATE = 16000

TEXTS: list[str] = [
    # one word
    "Yes.", "No.", "Billing.", "Okay.", "Hello?", "Mm-hm.", "Sure.", "Thanks.", "Cancel.",
    "Operator.",
    # a few words
    "No thanks.", "Yes, please.", "Twenty five.", "What's my balance?", "Sure, go ahead.",
    "Not right now.", "Speak to an agent.", "That's correct.", "Hello, is anyone there?",
    "Friday works for me.",
    # a sentence
    "My account number is 4 7 2 9.", "I'd like to speak to Maria Gonzalez.",
    "Can I change my delivery address?", "My name is Daniel Okafor.",
    "I was charged twice last month.", "The order number is 8 1 5 3 6.",
    "Is the pharmacy open on Sunday?", "Please send it to Baker Street.",
    "I need to reset my password.", "Call me back at five thirty.",
    "Mm-hm, that sounds good.", "No, that's not my address.",
    # a long turn
    "Could you tell me when the store opens tomorrow morning, please?",
    "I ordered a blue jacket last Tuesday and it still hasn't arrived.",
    "My flight from Chicago to Denver was cancelled and I need a new booking.",
    "Hi, this is Priya Raman calling about the appointment I made for Thursday afternoon.",
    "Yes, I'd like to pay the remaining balance of three hundred and forty dollars today.",
    "I moved to a new apartment last week, so please update the address on my account.",
    "Can you explain why my internet bill went up by fifteen dollars this month?",
    "I think there was a mistake with my prescription, the pharmacy gave me the wrong dose.",
    "My daughter Emily has a dentist appointment on the twelfth and we need to move it.",
    "We would like a table for four people on Friday evening around seven o'clock.",
    "Hello? Hello? Can you hear me? The line was breaking up a moment ago.",
    "My phone number is 5 5 5, 0 1 9 2, and my zip code is 9 0 2 1 0.",
]


@dataclass(frozen=True)
class Voice:
    name: str
    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w: float = 0.8
    pitch: float = 1.0  # > 1 replays faster and higher
    phone: bool = False  # through an 8 kHz band and back


VOICES: list[Voice] = [
    Voice("joe"),
    Voice("joe-slow", length_scale=1.3, noise_scale=0.5, noise_w=0.6),
    Voice("joe-fast", length_scale=0.8, noise_scale=0.9, noise_w=1.0),
    Voice("joe-low", length_scale=1.05, pitch=0.88),
    Voice("joe-high", noise_scale=0.8, pitch=1.14),
    Voice("joe-phone", noise_scale=1.0, noise_w=1.2, pitch=1.05, phone=True),
]


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    audio: np.ndarray  # float32 at 16 kHz

    @property
    def duration_s(self) -> float:
        return self.audio.size / RATE


def _speak(piper_voice, text: str, voice: Voice) -> np.ndarray:
    from piper import SynthesisConfig

    syn = SynthesisConfig(length_scale=voice.length_scale, noise_scale=voice.noise_scale,
                          noise_w_scale=voice.noise_w)
    raw = b"".join(c.audio_int16_bytes for c in piper_voice.synthesize(text, syn_config=syn))
    audio = pcm.pcm16_to_float(raw)
    rate = int(piper_voice.config.sample_rate * voice.pitch)  # replayed at another rate
    if voice.phone:
        audio = pcm.resample(audio, rate, 8000)
        rate = 8000
        # a little line hiss, seeded per text so the set is the same on every run
        rng = np.random.default_rng(len(text))
        audio = audio + rng.normal(0, 0.003, audio.size).astype(np.float32)
    return pcm.resample(audio, rate, RATE).astype(np.float32)


def build_set() -> Iterator[Utterance]:
    """Each text in three voices: the i-th text in voices i, i+2 and i+4 (mod 6)."""
    from piper import PiperVoice

    from providers.piper_tts import packaged_voice_path

    piper_voice = PiperVoice.load(packaged_voice_path())
    for i, text in enumerate(TEXTS):
        for voice in (VOICES[(i + k) % len(VOICES)] for k in (0, 2, 4)):
            yield Utterance(text, voice.name, _speak(piper_voice, text, voice))


_UNITS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_SAME = {"ok": "okay", "mhm": "mhm", "mmhm": "mhm", "mmhmm": "mhm", "mhmm": "mhm",
         "uhhuh": "mhm", "mm": "mhm", "hm": "mhm", "hmm": "mhm", "oclock": "o'clock",
         "cancelled": "canceled", "twelfth": "12th"}


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    value: int | None = None
    for w in words:
        if w in _UNITS or w in _TENS:
            add = _UNITS.get(w, _TENS.get(w, 0))
            # "twenty five" is 25, "three hundred forty" 340; "five thirty" is two numbers
            joins = value is not None and (value % 100 == 0 if w in _TENS
                                           else value >= 20 and value % 10 == 0)
            if value is not None and not joins:
                out.append(str(value))
                value = None
            value = add if value is None else value + add
        elif w == "hundred" and value is not None:
            value *= 100
        elif w == "and" and value is not None and value >= 100:
            continue
        else:
            if value is not None:
                out.append(str(value))
                value = None
            out.append(w)
    if value is not None:
        out.append(str(value))
    return out


def normalize(text: str) -> list[str]:
    """Words for scoring: lower case, numbers as digits (spoken digit runs joined, "$340" is
    "340 dollars"), "mm-hmm"/"mhm" one word, "ok" is "okay". Applied to reference and
    hypothesis alike, so it favours neither decode."""
    t = text.lower()
    t = re.sub(r"\$(\d+)", r"\1 dollars", t)
    t = re.sub(r"(?<=\d)[-.,:](?=\d)", "", t)  # 4-7-29, 5,550 → digits
    t = re.sub(r"\b(mm-hm+|uh-huh|m+h?m+|hm+)\b", "mhm", t)
    t = re.sub(r"(?<=[a-z])-(?=[a-z])", "", t)
    words = _numbers_to_digits(re.findall(r"[a-z0-9']+", t))
    joined: list[str] = []
    for w in words:
        w = _SAME.get(w.replace("'", ""), w)
        if w.isdigit() and joined and joined[-1].isdigit():
            joined[-1] += w  # "4 7 2 9" and "4729" are the same number spoken
        else:
            joined.append(w)
    return joined


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance over normalized words, reference length)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)
