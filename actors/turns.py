"""Turn taking on the caller's audio: Silero VAD, end of turn, early STT, barge-in.

The transcript is made while the caller is still on the line: at every pause the VAD sees
(`PAUSE_S` of silence) the utterance so far is decoded. If the caller stays silent until the
end-of-turn silence has passed, that decode is the final transcript, and it was started
`end_of_turn_silence_s - PAUSE_S` earlier than a decode at end of turn would have been. If
the caller speaks again, the decode becomes an interim transcript and the next pause starts
another.

Speech that starts while the agent is talking is a barge-in once it lasts
`barge_in_min_speech_s` (and, when `barge_in_min_words` > 0, the STT hears that many words);
shorter speech that ends while the agent is still talking ("mm-hm", "yeah", a cough) is a
backchannel: it interrupts nothing and is not a turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.options import VoiceOptions
from providers.stt import STT
from providers.vad import SileroVAD, VADOptions

log = logging.getLogger("aico.actors.turns")

RATE = 16000
PAUSE_S = 0.15
PREROLL_S = 0.3


@dataclass(frozen=True)
class TurnTimings:
    speech_end: float  # wall clock (monotonic) of the caller's last voiced audio
    end_of_turn: float  # when the silence made it a turn
    stt_final: float  # when the final transcript was ready
    speech_s: float


@dataclass(eq=False)
class Utterance:
    started: float
    audio: bytearray
    during_agent: bool
    segment_start: float
    speech_s: float = 0.0
    paused_at: float | None = None
    decode: asyncio.Task[str] | None = None  # of the audio up to the current pause
    barged: bool = False
    word_check: asyncio.Task[str] | None = None
    interims: list[asyncio.Task[Any]] = field(default_factory=list)

    def voiced_s(self, now: float) -> float:
        return self.speech_s + (0.0 if self.paused_at is not None else now - self.segment_start)


class TurnDetector:
    def __init__(self, vad: SileroVAD, stt: STT, options: VoiceOptions, *,
                 agent_speaking: Callable[[], bool],
                 on_speech_start: Callable[[Utterance], Any],
                 on_barge_in: Callable[[Utterance], Any],
                 on_turn: Callable[[str, TurnTimings, Utterance], Any],
                 on_interim: Callable[[str], Any],
                 on_discard: Callable[[Utterance, str], Any]) -> None:
        self.options = options
        self.stt = stt
        self._detector = SileroVAD(vad._session, options=VADOptions(
            activation_threshold=options.vad_activation,
            deactivation_threshold=options.vad_deactivation,
            min_speech_s=0.06, min_silence_s=PAUSE_S)).detector(sample_rate=RATE)
        self._agent_speaking = agent_speaking
        self._on_speech_start = on_speech_start
        self._on_barge_in = on_barge_in
        self._on_turn = on_turn
        self._on_interim = on_interim
        self._on_discard = on_discard
        self._preroll: deque[bytes] = deque(maxlen=int(PREROLL_S / 0.02) + 1)
        self.utterance: Utterance | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def push(self, pcm16: bytes) -> None:
        """One frame of 16 kHz PCM16 from the caller (any size)."""
        now = time.monotonic()
        utt = self.utterance
        if utt is not None:
            utt.audio.extend(pcm16)
        for event in self._detector.push(pcm16):
            if event.type == "speech_start":
                self._speech_start(now)
            else:
                self._speech_pause(now)
        utt = self.utterance
        if utt is None:
            self._preroll.append(pcm16)
            return
        if utt.paused_at is None:
            self._check_barge_in(utt, now)
        elif now - utt.paused_at >= self.options.end_of_turn_silence_s:
            self._end_of_turn(utt, now)

    def reset(self) -> None:
        """Forget the utterance in progress (the call moved on without it)."""
        self.utterance = None
        self._preroll.clear()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # --- VAD decisions -----------------------------------------------------------------

    def _speech_start(self, now: float) -> None:
        utt = self.utterance
        started = now - 0.06
        if utt is None:
            audio = bytearray(b"".join(self._preroll))
            self._preroll.clear()
            utt = self.utterance = Utterance(started=started, audio=audio,
                                             during_agent=self._agent_speaking(),
                                             segment_start=started)
            self._on_speech_start(utt)
        else:
            # The caller went on: the pause decode is only an interim now.
            if utt.decode is not None:
                utt.interims.append(utt.decode)
                utt.decode = None
            utt.paused_at = None
            utt.segment_start = started

    def _speech_pause(self, now: float) -> None:
        utt = self.utterance
        if utt is None or utt.paused_at is not None:
            return
        utt.paused_at = now - PAUSE_S
        utt.speech_s += max(0.0, utt.paused_at - utt.segment_start)
        if utt.speech_s >= self.options.min_speech_s and (not utt.during_agent or utt.barged):
            utt.decode = self._decode(bytes(utt.audio), interim_of=utt)

    def _check_barge_in(self, utt: Utterance, now: float) -> None:
        if utt.barged or not utt.during_agent:
            return
        if not self._agent_speaking():
            utt.during_agent = False  # the agent finished first: an ordinary turn
            return
        if utt.voiced_s(now) < self.options.barge_in_min_speech_s:
            return
        if self.options.barge_in_min_words <= 0:
            self._barge_in(utt)
        elif utt.word_check is None or utt.word_check.done():
            if utt.word_check is not None and utt.word_check.done() and \
                    not utt.word_check.cancelled() and utt.word_check.exception() is None and \
                    len(utt.word_check.result().split()) >= self.options.barge_in_min_words:
                self._barge_in(utt)
                return
            utt.word_check = self._decode(bytes(utt.audio))

    def _barge_in(self, utt: Utterance) -> None:
        utt.barged = True
        self._on_barge_in(utt)

    def _end_of_turn(self, utt: Utterance, now: float) -> None:
        self.utterance = None
        if utt.speech_s < self.options.min_speech_s:
            self._on_discard(utt, "too_short")
            return
        if utt.during_agent and not utt.barged and self._agent_speaking():
            self._on_discard(utt, "backchannel")
            return
        decode = utt.decode or self._decode(bytes(utt.audio))
        assert utt.paused_at is not None
        speech_end = utt.paused_at

        async def finish() -> None:
            try:
                text = await decode
            except Exception as err:  # noqa: BLE001 - a failed decode loses one turn, not the call
                log.warning("STT failed: %s", err)
                self._on_discard(utt, "stt_failed")
                return
            timings = TurnTimings(speech_end=speech_end, end_of_turn=now,
                                  stt_final=time.monotonic(), speech_s=utt.speech_s)
            if not text.strip():
                self._on_discard(utt, "no_words")
                return
            self._on_turn(text.strip(), timings, utt)

        self._spawn(finish())

    # --- STT ---------------------------------------------------------------------------

    def _decode(self, pcm: bytes, *, interim_of: Utterance | None = None) -> asyncio.Task[str]:
        async def run() -> str:
            result = await self.stt.recognize(pcm, sample_rate=RATE)
            return result.text

        task = self._spawn(run())
        if interim_of is not None:
            def report(t: asyncio.Task[str], utt: Utterance = interim_of) -> None:
                if t.cancelled() or t.exception() is not None:
                    return
                if t in utt.interims and t.result().strip():
                    self._on_interim(t.result().strip())
            task.add_done_callback(report)
        return task

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
