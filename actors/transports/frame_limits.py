"""What one caller connection may send: control frames through a token bucket, caller audio
no faster than real time (plus slack for network jitter). Both are per connection."""

from __future__ import annotations

import time
from collections.abc import Callable


class ControlBucket:
    """`rate_per_s` control frames a second, `burst` at once."""

    def __init__(self, *, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self.refused = 0

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False


class AudioBudget:
    """Caller audio seconds received may not run ahead of wall seconds since the call started
    (its `start` message) by more than `slack_s`: a caller cannot push minutes of audio (STT
    work) in a moment. Counting from the start, not the first frame read, keeps a backlog that
    piled up while the server was busy within budget."""

    def __init__(self, *, sample_rate: int, slack_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sample_rate = sample_rate
        self.slack_s = slack_s
        self._clock = clock
        self._started = clock()
        self.audio_s = 0.0

    def allow(self, nbytes: int) -> bool:
        self.audio_s += nbytes / 2 / self.sample_rate
        return self.audio_s <= (self._clock() - self._started) + self.slack_s
