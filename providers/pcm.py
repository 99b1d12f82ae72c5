"""PCM16 audio shared by every layer that touches samples: the one linear resampler (enough for
speech between 8 and 48 kHz) used by the voice pipeline, the LiveKit transport, the VAD and
Whisper."""

from __future__ import annotations

import numpy as np


def pcm16_to_float(pcm16: bytes) -> np.ndarray:
    """Samples in [-1, 1) as float32; a stray odd byte is not a sample."""
    whole = len(pcm16) - len(pcm16) % 2
    return np.frombuffer(pcm16[:whole], dtype=np.int16).astype(np.float32) / 32768.0


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Linear resampling of mono float32 samples."""
    if from_rate == to_rate or not audio.size:
        return audio
    n = max(1, round(audio.size * to_rate / from_rate))
    return np.interp(np.linspace(0, audio.size - 1, n), np.arange(audio.size),
                     audio).astype(np.float32)


def resample_pcm16(pcm16: bytes, from_rate: int, to_rate: int) -> bytes:
    """Linear resampling of mono PCM16."""
    if from_rate == to_rate or not pcm16:
        return pcm16
    out = resample(pcm16_to_float(pcm16), from_rate, to_rate) * 32768.0
    return np.clip(out, -32768, 32767).astype(np.int16).tobytes()
