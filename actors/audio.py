"""PCM16 helpers shared by the pipeline and the transports."""

from __future__ import annotations

import numpy as np


def resample_pcm16(pcm16: bytes, from_rate: int, to_rate: int) -> bytes:
    """Linear resampling of mono PCM16 (enough for speech between 8 and 48 kHz)."""
    if from_rate == to_rate or not pcm16:
        return pcm16
    audio = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype=np.int16).astype(np.float32)
    n = max(1, round(audio.size * to_rate / from_rate))
    out = np.interp(np.linspace(0, audio.size - 1, n), np.arange(audio.size), audio)
    return np.clip(out, -32768, 32767).astype(np.int16).tobytes()


def rms(pcm16: bytes) -> float:
    audio = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype=np.int16).astype(np.float64)
    return float(np.sqrt((audio * audio).mean())) if audio.size else 0.0
