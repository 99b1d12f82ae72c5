"""Where the voice pipeline's PCM helpers used to live: the one resampler is
`providers.pcm.resample_pcm16` (shared with the VAD and Whisper); the name stays importable
from here for callers of the old path."""

from __future__ import annotations

from providers.pcm import resample_pcm16

__all__ = ["resample_pcm16"]
