"""Turn taking on the caller's audio: Silero VAD, semantic end of turn, streaming STT, barge-in.

Each utterance the caller makes is fed, as it comes, into its own `STT.stream()` (a streaming
service transcribes as it hears; a non-streaming provider gets the buffered adapter). At every
pause the VAD hears (`DECODE_PAUSE_S` of silence) the stream is told (`pause()`: the adapter
decodes the utterance so far, so the transcript is on its way before the turn is known to have
ended), and once the silence reaches `PAUSE_S` the end-of-turn model (smart-turn) is asked
whether what was said is a finished turn. Finished: the turn ends as soon as it answers. Not
finished, or no model: the turn ends once the silence reaches `end_of_turn_silence_s`, the
fallback maximum. The audio of the pause itself is held back from the stream until the
caller speaks again, so an utterance that ends at the pause ends with nothing new after the
adapter's pause decode, and that decode is the final. If the caller goes on, the pause decode
becomes an interim.
The pause decode's text is offered (`on_pause_text`) as soon as it is ready while the caller
is still quiet, so a reply may be prepared before the turn ends; `on_resume` says the caller
went on after a pause (what was prepared on it is stale).

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
from dataclasses import dataclass
from typing import Any

from actors.options import VoiceOptions
from providers.stt import STT, SpeechStream
from providers.turn_model import COMPLETE_ABOVE, WINDOW_S, EndOfTurnModel
from providers.vad import SileroVAD, VADOptions

log = logging.getLogger("aico.actors.turns")

RATE = 16000
# Silence (as the VAD measures it: Silero's probability decays over 2-3 of its 32 ms windows
# after the voice, so ≈80 ms more after the last word) before the end-of-turn model is asked.
# bench/end_of_turn.py on the same audio asked at 0.15 / 0.10 / 0.08 s: false holds 5 / 6 / 6
# of 60 finished, false cut-offs 102 / 97 / 92 of 180 trailing: the model does not need more.
PAUSE_S = 0.12
# The pause decode starts earlier than the model is asked: Whisper takes longer than
# smart-turn, so the transcript, not the verdict, is what a turn waits for. A caller who goes
# on within PAUSE_S costs that decode (it becomes an interim). Two VAD windows: with three
# (0.096 s) the VAD decided ≈30 ms later and found 139 pauses inside 123 Piper sentences,
# against 144 with two.
DECODE_PAUSE_S = 0.064
PREROLL_S = 0.3
# The VAD calls it speech after this much voice: the speech began that long before it says so.
SPEECH_ONSET_S = 0.06


@dataclass(frozen=True)
class TurnTimings:
    speech_end: float  # wall clock (monotonic) of the caller's last voiced audio
    end_of_turn: float  # when the silence made it a turn
    stt_final: float  # when the final transcript was ready
    speech_s: float
    ended_by: str = "silence"  # "model": the end-of-turn model judged the turn finished
    completeness: float | None = None  # the model's last verdict on this turn


@dataclass(eq=False)
class Utterance:
    started: float
    audio: bytearray
    during_agent: bool
    segment_start: float
    speech_s: float = 0.0  # voiced seconds, measured on the audio (see TurnDetector.heard_s)
    segment_heard_at: float = 0.0  # `heard_s` when the current voiced segment started
    paused_at: float | None = None
    # `heard_s` when the current pause began: a pause lasts as long as its audio, not as long
    # as its frames took to arrive (an actor starved of CPU gets the next second in a burst).
    paused_heard: float = 0.0
    stream: SpeechStream | None = None
    transcript: asyncio.Task[str] | None = None  # drains the stream: the final text
    sent: int = 0  # bytes of `audio` fed into the stream
    awaiting_judgement: bool = False  # paused, decoding; the model is asked at PAUSE_S
    verdict: asyncio.Task[float] | None = None  # the end-of-turn model on the current pause
    completeness: float | None = None
    barged: bool = False
    word_check: asyncio.Task[str] | None = None

    def voiced_s(self, heard_s: float) -> float:
        return self.speech_s + (0.0 if self.paused_at is not None
                                else heard_s - self.segment_heard_at)


class TurnDetector:
    def __init__(self, vad: SileroVAD, stt: STT, options: VoiceOptions, *,
                 agent_speaking: Callable[[], bool],
                 on_speech_start: Callable[[Utterance], Any],
                 on_barge_in: Callable[[Utterance], Any],
                 on_turn: Callable[[str, TurnTimings, Utterance], Any],
                 on_interim: Callable[[str], Any],
                 on_discard: Callable[[Utterance, str], Any],
                 end_of_turn_model: EndOfTurnModel | None = None,
                 on_pause_text: Callable[[str, Utterance], Any] | None = None,
                 on_resume: Callable[[Utterance], Any] | None = None) -> None:
        self.options = options
        self.stt = stt
        self.end_of_turn_model = end_of_turn_model if options.end_of_turn_model else None
        self._detector = SileroVAD(vad._session, options=VADOptions(
            activation_threshold=options.vad_activation,
            deactivation_threshold=options.vad_deactivation,
            min_speech_s=SPEECH_ONSET_S, min_silence_s=DECODE_PAUSE_S)).detector(
                sample_rate=RATE)
        self._agent_speaking = agent_speaking
        self._on_speech_start = on_speech_start
        self._on_barge_in = on_barge_in
        self._on_turn = on_turn
        self._on_interim = on_interim
        self._on_discard = on_discard
        self._on_pause_text = on_pause_text
        self._on_resume = on_resume
        self._preroll: deque[bytes] = deque(maxlen=int(PREROLL_S / 0.02) + 1)
        self.utterance: Utterance | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: set[SpeechStream] = set()
        # Seconds of caller audio pushed so far: how long speech lasted is measured on the
        # audio, not on when its frames arrived. Frames that arrive in a burst (the actor was
        # starved of CPU, or the call just moved to it) would otherwise make a whole sentence
        # last a few milliseconds, and it was dropped as `too_short`.
        self.heard_s = 0.0

    def push(self, pcm16: bytes) -> None:
        """One frame of 16 kHz PCM16 from the caller (any size)."""
        now = time.monotonic()
        self.heard_s += len(pcm16) / (2 * RATE)
        utt = self.utterance
        if utt is not None:
            utt.audio.extend(pcm16)
        else:
            # Before the VAD decides: the frame in which it hears speech start is speech.
            self._preroll.append(pcm16)
        for event in self._detector.push(pcm16):
            if event.type == "speech_start":
                self._speech_start(now)
            else:
                self._speech_pause(now)
        utt = self.utterance
        if utt is None:
            return
        if utt.paused_at is None:
            self._check_barge_in(utt, now)
            self._feed(utt)
        elif self.heard_s - utt.paused_heard >= self.options.end_of_turn_silence_s:
            self._end_of_turn(utt, now)
        elif utt.awaiting_judgement and self.heard_s - utt.paused_heard >= PAUSE_S:
            self._ask_model(utt)

    def reset(self) -> None:
        """Forget the utterance in progress (the call moved on without it)."""
        if self.utterance is not None:
            self._drop(self.utterance)
        self.utterance = None
        self._preroll.clear()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for stream in list(self._streams):
            await stream.aclose()

    # --- VAD decisions -----------------------------------------------------------------

    def _speech_start(self, now: float) -> None:
        utt = self.utterance
        started = now - SPEECH_ONSET_S
        if utt is None:
            audio = bytearray(b"".join(self._preroll))
            self._preroll.clear()
            utt = self.utterance = Utterance(started=started, audio=audio,
                                             during_agent=self._agent_speaking(),
                                             segment_start=started,
                                             segment_heard_at=self.heard_s - SPEECH_ONSET_S)
            self._on_speech_start(utt)
        else:
            # The caller went on: the pause's verdict no longer holds (the stream learns it
            # from the held-back audio that follows).
            if utt.verdict is not None:
                utt.verdict.cancel()
                utt.verdict = None
            utt.awaiting_judgement = False
            utt.paused_at = None
            utt.segment_start = started
            utt.segment_heard_at = self.heard_s - SPEECH_ONSET_S
            if self._on_resume is not None:
                self._on_resume(utt)

    def _speech_pause(self, now: float) -> None:
        utt = self.utterance
        if utt is None or utt.paused_at is not None:
            return
        utt.paused_at = now - DECODE_PAUSE_S
        utt.paused_heard = self.heard_s - DECODE_PAUSE_S
        utt.speech_s += max(0.0, self.heard_s - DECODE_PAUSE_S - utt.segment_heard_at)
        if utt.speech_s >= self.options.min_speech_s and self._transcribing(utt):
            self._feed(utt)
            assert utt.stream is not None
            decoded = utt.stream.pause()
            if decoded is not None and self._on_pause_text is not None:
                self._offer_pause_text(utt, decoded)
            utt.awaiting_judgement = True

    def _ask_model(self, utt: Utterance) -> None:
        """The silence reached PAUSE_S: whether the turn is finished is the model's to say."""
        utt.awaiting_judgement = False
        model = self.end_of_turn_model
        if model is not None and model.worth_asking(
                self.options.end_of_turn_silence_s - PAUSE_S):
            utt.verdict = self._judge(utt, model)

    def _check_barge_in(self, utt: Utterance, now: float) -> None:
        if utt.barged or not utt.during_agent:
            return
        if not self._agent_speaking():
            utt.during_agent = False  # the agent finished first: an ordinary turn
            return
        if utt.voiced_s(self.heard_s) < self.options.barge_in_min_speech_s:
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

    def _end_of_turn(self, utt: Utterance, now: float, *, by: str = "silence") -> None:
        self.utterance = None
        if utt.verdict is not None and not utt.verdict.done():
            utt.verdict.cancel()
        if utt.speech_s < self.options.min_speech_s:
            self._drop(utt)
            self._on_discard(utt, "too_short")
            return
        if utt.during_agent and not utt.barged and self._agent_speaking():
            self._drop(utt)
            self._on_discard(utt, "backchannel")
            return
        if utt.stream is None:
            utt.during_agent = False  # the agent finished while the caller paused
            self._feed(utt)
        assert utt.stream is not None and utt.transcript is not None
        # The audio after the pause is silence: it stays out of the stream (see the module
        # docstring), so a buffered stream's pause decode is its final.
        utt.stream.end_input()
        transcript = utt.transcript
        assert utt.paused_at is not None
        speech_end = utt.paused_at

        async def finish() -> None:
            try:
                text = await transcript
            except Exception as err:  # noqa: BLE001 - a failed decode loses one turn, not the call
                log.warning("STT failed: %s", err)
                self._on_discard(utt, "stt_failed")
                return
            finally:
                self._close_stream(utt)
            timings = TurnTimings(speech_end=speech_end, end_of_turn=now,
                                  stt_final=time.monotonic(), speech_s=utt.speech_s,
                                  ended_by=by, completeness=utt.completeness)
            if not text.strip():
                self._on_discard(utt, "no_words")
                return
            self._on_turn(text.strip(), timings, utt)

        self._spawn(finish())

    def _offer_pause_text(self, utt: Utterance, decoded: asyncio.Future[str]) -> None:
        pause = utt.paused_at

        def offer(f: asyncio.Future[str]) -> None:
            # Only while the caller is still quiet at this pause: once the turn has ended the
            # same decode is its final, and once the caller went on it is stale.
            if f.cancelled() or f.exception() is not None or not f.result().strip():
                return
            if self.utterance is utt and utt.paused_at == pause and \
                    self._on_pause_text is not None:
                self._on_pause_text(f.result().strip(), utt)

        decoded.add_done_callback(offer)

    # --- end-of-turn model -------------------------------------------------------------

    def _judge(self, utt: Utterance, model: EndOfTurnModel) -> asyncio.Task[float]:
        """Ask the model about the utterance up to this pause; a finished turn ends now."""
        pause = utt.paused_at
        window = RATE * WINDOW_S * 2
        task = self._spawn(model.completeness(bytes(utt.audio[-window:])))

        def decide(t: asyncio.Task[float]) -> None:
            if t.cancelled():
                return
            if t.exception() is not None:
                # Without a verdict the silence decides, as it does with no model.
                log.warning("end-of-turn model failed: %s", t.exception())
                return
            utt.completeness = t.result()
            if self.utterance is utt and utt.paused_at == pause and \
                    utt.completeness > COMPLETE_ABOVE:
                self._end_of_turn(utt, time.monotonic(), by="model")

        task.add_done_callback(decide)
        return task

    # --- STT ---------------------------------------------------------------------------

    @staticmethod
    def _transcribing(utt: Utterance) -> bool:
        # Speech over the agent is transcribed once it is a barge-in (or the agent stopped):
        # a backchannel costs no STT at all.
        return not utt.during_agent or utt.barged

    def _feed(self, utt: Utterance) -> None:
        """Open the utterance's STT stream if it is to be transcribed, and feed it the audio
        it has not had yet."""
        if not self._transcribing(utt):
            return
        if utt.stream is None:
            utt.stream = self.stt.stream(sample_rate=RATE)
            self._streams.add(utt.stream)
            utt.transcript = self._spawn(self._read(utt, utt.stream))
        if len(utt.audio) > utt.sent:
            utt.stream.push_frame(bytes(utt.audio[utt.sent:]))
            utt.sent = len(utt.audio)

    async def _read(self, utt: Utterance, stream: SpeechStream) -> str:
        """The stream's events: interims go to the caller's screen, finals make the text."""
        finals: list[str] = []
        async for event in stream:
            text = event.text.strip()
            if not text:
                continue
            if event.type == "final":
                finals.append(text)
            elif self.utterance is utt:
                self._on_interim(text)
        return " ".join(finals)

    def _drop(self, utt: Utterance) -> None:
        if utt.verdict is not None:
            utt.verdict.cancel()
        transcript = utt.transcript
        if transcript is not None:
            if transcript.done() and not transcript.cancelled():
                transcript.exception()  # a failed stream of a dropped utterance: nothing lost
            transcript.cancel()
        self._close_stream(utt)

    def _close_stream(self, utt: Utterance) -> None:
        stream, utt.stream = utt.stream, None
        if stream is not None:
            self._streams.discard(stream)
            self._spawn(stream.aclose())

    def _decode(self, pcm: bytes) -> asyncio.Task[str]:
        """One-shot decode (the barge-in word check: the caller is still talking)."""
        async def run() -> str:
            result = await self.stt.recognize(pcm, sample_rate=RATE)
            return result.text

        return self._spawn(run())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


_model_unavailable = False


def load_end_of_turn_model(*, load: bool = True) -> EndOfTurnModel | None:
    """The process's end-of-turn model, loaded and run once (blocking: call off the event
    loop unless `load=False`, which only returns it when already loaded). Without the weight
    package the silence alone ends turns."""
    global _model_unavailable
    if EndOfTurnModel._shared is not None or _model_unavailable or not load:
        return EndOfTurnModel._shared
    try:
        model = EndOfTurnModel.load()
    except (FileNotFoundError, ImportError) as err:
        _model_unavailable = True
        log.warning("end-of-turn model unavailable, turns end on silence alone: %s", err)
        return None
    model.completeness_sync(b"\0\0" * RATE)  # the first run allocates
    return model
