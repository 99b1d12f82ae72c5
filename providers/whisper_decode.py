"""Whisper decoded on the audio's real length, with a guard that falls back to the 30 s window.

faster-whisper always pads the log-mel features to Whisper's 30 s window (`pad_or_trim`), so a
1 s "yes" costs as much encoder time as 30 s of speech (≈0.4 s of CPU for tiny.en here). The
CTranslate2 model underneath (`WhisperModel.model`, a `ctranslate2.models.Whisper`) accepts
shorter features; decoding those is 4-5x faster with the same words on full sentences.

Unpadded, Whisper never sees the silence after the speech that ended every training window,
and short clips loop ("Billing, Billing, Billing…"). Measured on the word-error set
(`bench/stt_wer.py`, `bench/results/stt_wer.md`), more trailing padding helps: the fast path
pads to a minimum width (6 s, 20 s for clips under 2 s, which otherwise mishear one-word
answers; and from 4 s on at least 3x the clip's length, long clips lost words otherwise) with
0.3 s of silence before the speech and 1 s after it, bounds the tokens by the
audio's duration, and a check (a loop: an n-gram or the zlib compression ratio; too few words
for a long clip) sends a clip back to the padded decode.

Every function takes a batch: CTranslate2 `generate` decodes many utterances in one call (the
STT deployment batches requests from many calls). Fast-path features in a batch are padded to
the batch's longest, which only adds trailing silence to the shorter ones.
"""

from __future__ import annotations

import re
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SAMPLE_RATE = 16000
FRAMES_PER_S = 100  # log-mel hop: 10 ms
WINDOW_FRAMES = 3000  # Whisper's 30 s window

Path = Literal["fast", "padded", "fallback"]


@dataclass(frozen=True)
class DecodeGuard:
    """When the fast path may be trusted. Defaults are the ones the word-error set chose."""

    min_s: float = 6.0  # pad shorter clips' features to this length
    tail_s: float = 1.0  # and always this much silence after the speech
    min_width_ratio: float = 3.0  # and to 3x the clip's length (a 5 s clip to 15 s)
    ratio_from_s: float = 4.0  # ... for clips at least this long (the ratio's WER gain was there)
    lead_s: float = 0.3  # silence before the speech: a clip cut at its first word lost it
    short_s: float = 2.0  # clips shorter than this loop more and mishear more: pad them
    short_min_s: float = 20.0  # further (2/3 of the 30 s window's encoder time)
    padded_below_s: float = 0.0  # clips shorter than this go straight to the padded decode
    tokens_per_s: float = 8.0  # fast speech with digits stays under ~6 tokens/s
    extra_tokens: int = 8
    max_compression_ratio: float = 2.4  # Whisper's own loop threshold
    # Fewer words than this per second of a long clip: the decode stopped early (it dropped
    # the end of a phone number once); callers speak 2-3 words per second.
    min_words_per_s: float = 1.0
    sparse_after_s: float = 3.0
    enabled: bool = True  # False: always the padded decode (the reference)
    fallback: bool = True  # False: keep the fast text even when a check fires (to measure)

    def max_tokens(self, duration_s: float) -> int:
        return int(self.extra_tokens + self.tokens_per_s * duration_s)


@dataclass(frozen=True)
class Decoded:
    text: str
    path: Path  # fast, padded (chosen up front) or fallback (the guard fired)
    guard: str = ""  # why the guard fired
    language: str | None = None


_WORD = re.compile(r"[a-z0-9']+")


def repetition(text: str) -> str:
    """Why `text` looks like a decoding loop, or "" if it does not.

    Whisper loops by starting the utterance over ("can I change my address? can I change my"),
    or by saying one word again and again. A false alarm only costs the padded decode, so the
    check is eager: the whole text one phrase said again, the opening two words again later,
    any three words twice, or one word three times in a row.
    """
    words = _WORD.findall(text.lower())
    n = len(words)
    for size in range(1, n // 2 + 1):
        if all(words[i] == words[i % size] for i in range(size, n)):
            return f"repeats {' '.join(words[:size])!r}"
    if n >= 4 and any(words[i:i + 2] == words[:2] for i in range(2, n - 1)):
        return f"starts over at {' '.join(words[:2])!r}"
    seen: set[tuple[str, ...]] = set()
    for i in range(n - 2):
        gram = tuple(words[i:i + 3])
        if gram in seen:
            return f"repeats {' '.join(gram)!r}"
        seen.add(gram)
    for i in range(n - 2):
        if words[i] == words[i + 1] == words[i + 2]:
            return f"repeats {words[i]!r}"
    return ""


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


class WhisperDecoder:
    """Greedy, timestamp-free decoding of whole utterances on a loaded faster-whisper model."""

    def __init__(self, model: Any, *, guard: DecodeGuard | None = None) -> None:
        self.model = model  # faster_whisper.WhisperModel
        self.guard = guard or DecodeGuard()
        self._tokenizers: dict[str | None, Any] = {}
        self._tokenizers_lock = threading.Lock()

    def _tokenizer(self, language: str | None) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        multilingual = self.model.model.is_multilingual
        key = language if multilingual else None
        with self._tokenizers_lock:
            if key not in self._tokenizers:
                self._tokenizers[key] = Tokenizer(self.model.hf_tokenizer, multilingual,
                                                  task="transcribe", language=key or "en")
            return self._tokenizers[key]

    def language_of(self, audio: np.ndarray, language: str | None) -> str | None:
        """English-only models need no language; a multilingual one detects it if unset."""
        if language or not self.model.model.is_multilingual:
            return language
        detected, _prob, _all = self.model.detect_language(audio)
        return str(detected)

    def decode(self, audios: list[np.ndarray], language: str | None, *,
               beam_size: int = 1) -> list[Decoded]:
        """Transcribe each 16 kHz float32 utterance in `language` (None: an English-only
        model's own); one `generate` call per path taken."""
        guard = self.guard
        results: list[Decoded | None] = [None] * len(audios)
        fast: list[int] = []
        padded: list[int] = []
        for i, audio in enumerate(audios):
            if audio.size < SAMPLE_RATE // 10:
                results[i] = Decoded("", "padded", language=language)
            elif not guard.enabled or audio.size < guard.padded_below_s * SAMPLE_RATE:
                padded.append(i)
            else:
                fast.append(i)
        # Short and long clips pad to different widths: decode them as two groups.
        short = [i for i in fast if audios[i].size < guard.short_s * SAMPLE_RATE]
        groups = [(g, w) for g, w in ((short, guard.short_min_s),
                                      ([i for i in fast if i not in short], guard.min_s)) if g]
        for group, min_s in groups:
            texts = self._generate([audios[i] for i in group], language, padded=False,
                                   min_s=min_s, beam_size=beam_size)
            for i, (text, why) in zip(group, texts, strict=True):
                if why and guard.fallback:
                    padded.append(i)
                    results[i] = Decoded("", "fallback", guard=why, language=language)
                else:
                    results[i] = Decoded(text, "fast", guard=why, language=language)
        if padded:
            padded.sort()
            texts = self._generate([audios[i] for i in padded], language, padded=True,
                                   beam_size=beam_size)
            for i, (text, _why) in zip(padded, texts, strict=True):
                prior = results[i]
                results[i] = Decoded(text, prior.path if prior else "padded",
                                     guard=prior.guard if prior else "", language=language)
        return [r if r is not None else Decoded("", "padded") for r in results]

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features (80 × frames) of the utterance's real length."""
        return np.asarray(self.model.feature_extractor(audio), dtype=np.float32)

    def _generate(self, audios: list[np.ndarray], language: str | None, *,
                  padded: bool, min_s: float = 0.0,
                  beam_size: int = 1) -> list[tuple[str, str]]:
        """(text, why the guard fired or "") per utterance."""
        import ctranslate2

        guard = self.guard
        lead = np.zeros(int(guard.lead_s * SAMPLE_RATE), dtype=np.float32)
        feats = [self.features(a if padded or not lead.size else np.concatenate([lead, a]))
                 for a in audios]
        if padded:
            width = WINDOW_FRAMES
        else:
            longest = max(f.shape[1] for f in feats)
            ratio = guard.min_width_ratio if max(a.size for a in audios) >= \
                guard.ratio_from_s * SAMPLE_RATE else 0.0
            width = max(longest + int(guard.tail_s * FRAMES_PER_S),
                        int(min_s * FRAMES_PER_S), int(longest * ratio))
            width = min(width, WINDOW_FRAMES)
        # Zero is what faster-whisper's own `pad_or_trim` pads the features with.
        batch = np.zeros((len(feats), feats[0].shape[0], width), dtype=np.float32)
        for row, f in enumerate(feats):
            n = min(f.shape[1], width)
            batch[row, :, :n] = f[:, :n]
        tokenizer = self._tokenizer(language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        bounds = [guard.max_tokens(a.size / SAMPLE_RATE) for a in audios]
        max_length = len(prompt) + (self.model.max_length // 2 if padded else max(bounds) + 1)
        results = self.model.model.generate(
            ctranslate2.StorageView.from_array(batch), [prompt] * len(feats), beam_size=beam_size,
            max_length=min(max_length, self.model.max_length), return_scores=True,
            return_no_speech_prob=True, suppress_blank=True)
        out: list[tuple[str, str]] = []
        for result, bound, audio in zip(results, bounds, audios, strict=True):
            tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            text = tokenizer.decode(tokens).strip()
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else 0.0
            # faster-whisper's own no-speech rule: silence and noise come back empty.
            if result.no_speech_prob > 0.6 and avg_logprob < -1.0:
                out.append(("", ""))
                continue
            why = ""
            if not padded:
                if len(tokens) > bound:
                    why = f"{len(tokens)} tokens for {bound} allowed"
                elif (duration := audio.size / SAMPLE_RATE) >= guard.sparse_after_s and \
                        len(_WORD.findall(text.lower())) < guard.min_words_per_s * duration:
                    why = f"{len(_WORD.findall(text.lower()))} words in {duration:.1f} s"
                elif compression_ratio(text) > guard.max_compression_ratio:
                    why = f"compression ratio {compression_ratio(text):.1f}"
                else:
                    why = repetition(text)
            out.append((text, why))
        return out
