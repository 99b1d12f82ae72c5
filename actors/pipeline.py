"""One live call: caller audio in, agent audio and events out, the flow stepped by the executor.

    pipeline = VoicePipeline(pool=pool, settings=settings, session_id=sid, send=outbox.put)
    ready = await pipeline.start(sample_rate=16000)      # {"type": "ready", "sample_rate": N}
    pipeline.push_audio(pcm16)                           # every caller frame
    await pipeline.control({"type": "dtmf", "digit": "5"})
    await pipeline.hang_up()                             # the caller went away

`send` receives bytes (agent PCM16 at the announced rate, paced in real time) and dicts (the
JSON events of docs/voice-protocol.md). The pipeline keeps nothing PostgreSQL does not: a new
one started with `resume=True` on the same session carries on from the last committed step.

When the caller pauses and the pause decode has words, the reply to them is prepared
speculatively (`flows.executor.speculate`: nothing committed, the LLM stream buffered, unheard)
and its opening clause synthesized ahead (`SpeechAhead`); the turn adopts both if it ends with
the same words, and cancels them if the caller goes on.

Per turn it records end-of-turn delay, STT final latency, LLM time to first token, TTS time
to first byte and voice-to-voice latency (the caller's last voiced audio → the first agent
frame sent), appends them to `sessions.metrics` and sends them as a `metrics` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast
from uuid import UUID

import asyncpg

from actors.call_providers import load_vad
from actors.options import VoiceOptions, voice_options
from actors.speech_ahead import SpeechAhead
from actors.speech_out import Sentence, SpeechOut, spoken_form
from actors.turns import RATE, TurnDetector, TurnTimings, Utterance, load_end_of_turn_model
from aico.errors import NotFound
from aico.settings import Settings
from db import session_metrics
from flows import speculative
from flows.events import End, InboundEvent, Listen, Say, SayChunk, Transfer
from flows.executor import StepContext, speculate, step
from flows.sessions import open_session_speech, provider_usage, resume_point
from providers.pcm import resample_pcm16
from providers.tts import opening_clause, split_sentences

log = logging.getLogger("aico.actors.pipeline")

# The caller's line counts as live while frames arrive (every 10–40 ms, silence included); the
# no-input timer runs only on live time (a line with no frames at all is the transport's
# business: reconnect or orphan hang-up).
LINE_QUIET_S = 1.0
NO_INPUT_TICK_S = 0.25


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class VoicePipeline:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, session_id: UUID | str,
                 send: Callable[[bytes | dict[str, Any]], Any], open_llm: Any = None) -> None:
        self.pool = pool
        self.settings = settings
        self.session_id = UUID(str(session_id))
        self._send = send
        self._ctx = StepContext(pool=pool, settings=settings, open_llm=open_llm)
        self._llm_started: float | None = None
        self.options = VoiceOptions()
        self.in_rate = RATE
        self.speech: SpeechOut | None = None
        self.turns: TurnDetector | None = None
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._flow_task: asyncio.Task[None] | None = None
        self._step_task: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._unconfirmed: set[str] = set()  # LLM streams whose reply is not committed yet
        # Streams a barge-in dropped: anything more of them is not spoken (a backstop: the
        # step that wrote them is cancelled).
        self._dropped: set[str] = set()
        self._stream_text: dict[str, str] = {}
        self._listening = False
        self._turn: dict[str, Any] | None = None  # metrics of the turn being answered
        self._turn_started: float = 0.0
        self._connected_at = 0.0
        self._audio_at = time.monotonic()  # the last caller frame
        self._greeting_ms: int | None = None
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._flow_ended: str | None = None  # the flow's End was committed; the call is ending
        self._closing = False
        self._released: list[Any] = []  # providers closed with the call
        # The reply being prepared on the caller's last pause: (its words, normalised; task).
        self._speculation: tuple[str, asyncio.Task[Any]] | None = None
        self._ahead: SpeechAhead | None = None
        self._ahead_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, *, sample_rate: int = RATE, resume: bool = False,
                    connected_at: float | None = None) -> dict[str, Any]:
        self._connected_at = connected_at or time.monotonic()
        self.in_rate = int(sample_rate)
        try:
            point = await resume_point(self.pool, self.session_id)
        except NotFound:
            raise LookupError(f"session {self.session_id} not found") from None
        self.options = voice_options(point.variables, settings=self.settings.voice)
        self._ctx.on_llm_start = self._on_llm_start
        stt, tts = await open_session_speech(
            self.pool, {"org_id": point.org_id, "providers": point.providers},
            settings=self.settings)
        self._ahead = SpeechAhead(tts)
        # SpeechAhead stands in for the TTS (it is the TTS, plus one text made ahead).
        self.speech = SpeechOut(cast(Any, self._ahead), send_audio=self._send_audio, send_event=self._event,
                                on_first_audio=self._first_audio)
        end_of_turn_model = None
        if self.options.end_of_turn_model:
            # Loaded once per process, never on the event loop.
            end_of_turn_model = load_end_of_turn_model(load=False) or \
                await asyncio.to_thread(load_end_of_turn_model)
        self.turns = TurnDetector(
            load_vad(), stt, self.options, agent_speaking=lambda: self._agent_busy(),
            on_speech_start=self._on_speech_start, on_barge_in=self._on_barge_in,
            on_turn=self._on_turn, on_interim=self._on_interim, on_discard=self._on_discard,
            end_of_turn_model=end_of_turn_model, on_pause_text=self._on_pause_text,
            on_resume=lambda utt: self._cancel_speculation())
        ready = {"type": "ready", "sample_rate": tts.sample_rate,
                 "session_id": str(self.session_id), "resumed": bool(resume)}
        self._send(ready)
        self._flow_task = asyncio.create_task(self._flow_loop(), name="flow")
        self._timers["max_duration"] = asyncio.create_task(self._max_duration())
        if point.kind == "ended":
            await self._finish("ended")
        elif point.kind == "start":
            self._events.put_nowait(InboundEvent.session_started())
        elif point.kind == "llm_reply" and point.llm_token:
            # Died mid-reply: the caller's last turn is committed; the reply was not heard.
            self._events.put_nowait(InboundEvent.llm_completed(point.llm_token, "",
                                                               interrupted=True))
        elif point.kind == "listening":
            self._listening = True
            self._arm_no_input()
        return ready

    def push_audio(self, pcm16: bytes) -> None:
        if self.turns is None or self._closing:
            return
        self._audio_at = time.monotonic()
        if self.in_rate != RATE:
            pcm16 = resample_pcm16(pcm16, self.in_rate, RATE)
        self.turns.push(pcm16)

    async def control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "dtmf":
            digit = str(message.get("digit", ""))[:16]
            if digit:
                self._event({"type": "dtmf", "digit": digit})
                self._user_event(InboundEvent.user_turn(digit, dtmf=digit))
        elif kind in ("hangup", "stop"):
            await self.hang_up("hangup")

    async def hang_up(self, reason: str = "hangup") -> None:
        """The caller went away: record it and stop everything."""
        if self.ended.is_set() or self._flow_ended is not None:
            # The flow ended the call (its end is committed; the last words may still have
            # been playing): nothing to record, only what it still holds to release.
            self._closing = True
            await self._stop_work()
            if not self.ended.is_set():
                await self._persist(None)
                self.end_reason = self._flow_ended
                self.ended.set()
            return
        self._closing = True
        await self._stop_work()
        # The call's final usage first: whoever sees the session ended sees all of it.
        await self._persist(None)
        await self._record_end(reason)
        self.end_reason = reason
        self.ended.set()

    async def _record_end(self, reason: str, *, attempts: int = 3) -> bool:
        """`session.ended`, retried (its event id makes a retry apply once). If it still cannot
        be recorded it is logged, and the call's route fails the session (or, with the route
        gone too, the sweeper does once the call's lease expires): never lost silently."""
        for attempt in range(1, attempts + 1):
            try:
                async for _ in step(self.pool, self.session_id,
                                    InboundEvent.session_ended(reason), context=self._ctx):
                    pass
                return True
            except Exception:
                log.warning("session %s: recording session.ended failed (attempt %d of %d)",
                            self.session_id, attempt, attempts, exc_info=True)
                if attempt < attempts:
                    await asyncio.sleep(0.2 * attempt)
        log.error("session %s: session.ended (%s) was not recorded", self.session_id, reason)
        return False

    async def detach(self) -> None:
        """Stop without touching the session (the transport will reattach elsewhere)."""
        self._closing = True
        await self._stop_work()
        self.ended.set()

    async def _stop_work(self) -> None:
        self._cancel_speculation()
        if self._ahead_task is not None:
            self._ahead_task.cancel()
        for pending in self._ctx.speculations.values():
            speculative.discard(pending)
        self._ctx.speculations.clear()
        tasks = [t for t in (self._flow_task, self._step_task, *self._timers.values())
                 if t is not None and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.speech is not None:
            await self.speech.aclose()
        if self.turns is not None:
            await self.turns.aclose()
        # The call's own provider objects hold connections (a cloud TTS's HTTP session); the
        # self-hosted models behind them are shared by the process and stay loaded.
        providers = [self.speech.tts if self.speech else None,
                     self.turns.stt if self.turns else None]
        for provider in providers:
            if provider is not None and provider not in self._released:
                self._released.append(provider)
                with contextlib.suppress(Exception):
                    await provider.aclose()

    async def _finish(self, reason: str) -> None:
        """The flow ended the call: let the last words play, then say goodbye."""
        if self.speech is not None:
            await self.speech.wait_idle()
        self._closing = True
        self.end_reason = reason
        await self._persist(None)
        self._event({"type": "end", "reason": reason})
        for task in self._timers.values():
            task.cancel()
        self.ended.set()

    # --- the flow ----------------------------------------------------------------------

    def _user_event(self, event: InboundEvent) -> None:
        self._cancel_speculation()  # a turn's own was taken by `_on_turn` before this
        self._listening = False
        self._cancel_timer("no_input")
        self._events.put_nowait(event)

    async def _flow_loop(self) -> None:
        while True:
            event = await self._events.get()
            self._step_task = asyncio.create_task(self._run_step(event), name="step")
            try:
                await self._step_task
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            except Exception as err:
                log.exception("session %s: step failed", self.session_id)
                self._event({"type": "error", "code": getattr(err, "code", "step_failed"),
                             "message": str(err)[:300]})
            finally:
                self._step_task = None
            if self.ended.is_set():
                return

    async def _run_step(self, event: InboundEvent) -> None:
        assert self.speech is not None
        end_reason: str | None = None
        async for action in step(self.pool, self.session_id, event, context=self._ctx):
            if isinstance(action, Say):
                self._event({"type": "agent_text", "text": action.text, "final": True,
                             "node_id": action.node_id})
                self._event({"type": "transcript", "role": "agent", "text": action.text,
                             "final": True})
                self.speech.say(action.text, interruptible=action.interruptible)
            elif isinstance(action, SayChunk):
                sid = action.stream_id
                if sid in self._dropped:
                    continue
                if sid not in self._stream_text:
                    self._stream_text[sid] = ""
                    self._unconfirmed.add(sid)
                    turn = self._turn
                    if turn is not None and turn.get("llm_ttft_ms") is None:
                        now = time.monotonic()
                        started = self._llm_started or self._turn_started
                        turn["llm_ttft_ms"] = _ms(now - started)
                        turn["executor_ms"] = _ms(started - self._turn_started)
                        turn["_first_token"] = now
                if action.text:
                    self._stream_text[sid] += action.text
                    self.speech.push_stream(sid, action.text, interruptible=action.interruptible)
                    self._event({"type": "agent_text", "text": action.text, "final": False,
                                 "stream_id": sid})
                if action.final:
                    self.speech.end_stream(sid, interruptible=action.interruptible)
                    full = self._stream_text.pop(sid, "").strip()
                    self._event({"type": "transcript", "role": "agent", "text": full,
                                 "final": True, "stream_id": sid})
                    # Hold the executor here until the caller has heard the reply: only then
                    # may it commit the reply as said (a barge-in commits what was heard).
                    if not await self.speech.wait_stream(sid):
                        return
                    self._unconfirmed.discard(sid)
            elif isinstance(action, Listen):
                self._listening = True
                self._arm_no_input()
            elif isinstance(action, Transfer):
                self._event({"type": "transfer", "to": action.to, "mode": action.mode})
            elif isinstance(action, End) and action.session_id in (None, str(self.session_id)):
                end_reason = self._flow_ended = action.reason
        if self._turn is not None and self._turn.get("voice_to_voice_ms") is None \
                and not self.speech.speaking:
            await self._close_turn()
        if end_reason is not None:
            await self._finish(end_reason)

    # --- turn taking -------------------------------------------------------------------

    def _agent_busy(self) -> bool:
        return self.speech is not None and self.speech.speaking

    def _on_speech_start(self, utt: Utterance) -> None:
        self._cancel_timer("no_input")
        self._event({"type": "user_speech_started", "over_agent": utt.during_agent})

    def _on_interim(self, text: str) -> None:
        self._event({"type": "transcript", "role": "user", "text": text, "final": False})

    def _on_discard(self, utt: Utterance, reason: str) -> None:
        self._cancel_speculation()
        self._event({"type": "user_speech_ignored", "reason": reason})
        if self._listening:
            self._arm_no_input()

    def _on_barge_in(self, utt: Utterance) -> None:
        assert self.speech is not None
        if not self.speech.speaking or not self.speech.interruptible:
            return
        heard = self.speech.interrupt()
        self._event({"type": "interrupted",
                     "heard": " ".join(t for t in heard.values() if t).strip()})
        self._drop_reply(heard)

    def _drop_reply(self, heard: dict[str | None, str]) -> None:
        """Stop the step that is speaking and commit only what the caller heard of it."""
        if self._step_task is not None and self._unconfirmed:
            self._step_task.cancel()
        for sid in sorted(self._unconfirmed):
            self._events.put_nowait(InboundEvent.llm_completed(sid, heard.get(sid, ""),
                                                               interrupted=True))
            self._stream_text.pop(sid, None)
            self._dropped.add(sid)
        self._unconfirmed.clear()

    def _on_pause_text(self, text: str, utt: Utterance) -> None:
        """The caller paused and the words so far are known: prepare the reply to them while
        the silence decides whether the turn is over (only when the flow is listening and
        nothing else is being said or stepped)."""
        words = speculative.normalised(text)
        log.debug("session %s: pause transcript %r (listening %s, stepping %s, speaking %s)",
                  self.session_id, text, self._listening, self._step_task is not None,
                  self._agent_busy())
        if self._speculation is not None and self._speculation[0] == words:
            return  # the same words again: the reply already being prepared stands
        self._cancel_speculation()
        if not words or self._closing or not self._listening or self._step_task is not None \
                or not self._events.empty() or self._agent_busy():
            return
        task = asyncio.get_running_loop().create_task(
            speculate(self._ctx, self.session_id, text), name="speculate")
        self._speculation = (words, task)
        if self._ahead_task is not None:
            self._ahead_task.cancel()
        self._ahead_task = asyncio.get_running_loop().create_task(
            self._speak_ahead(task), name="speak_ahead")

    async def _speak_ahead(self, pending: asyncio.Task[Any]) -> None:
        """Synthesize the prepared reply's opening, cut as `SpeechOut` will cut it when the
        reply is adopted (its first clause, else its first sentence, else all of it)."""
        assert self.speech is not None and self._ahead is not None
        reply = await pending
        if reply is None:
            return
        text, head = "", None
        async for chunk in reply.peek():
            if not chunk.text:
                continue
            text += chunk.text
            clause = opening_clause(text, min_words=self.speech.clause_min_words,
                                    max_words=self.speech.clause_max_words)
            sentences = split_sentences(text)[0]
            head = (spoken_form(clause[0]) if clause is not None
                    else sentences[0] if sentences else None)
            if head is not None:
                break
        else:
            head = text.strip()
        # Once adopted, the reply is being spoken: SpeechOut synthesizes it itself.
        if head and not reply.cancelled and not reply.adopted:
            self._ahead.prefetch(head)

    def _cancel_speculation(self) -> None:
        if self._speculation is not None:
            if self._ahead_task is not None:
                self._ahead_task.cancel()
                self._ahead_task = None
            speculative.discard(self._speculation[1])
            self._speculation = None
            if self._ahead is not None:
                self._ahead.drop()  # what was synthesized for it is not wanted either

    def _on_turn(self, text: str, timings: TurnTimings, utt: Utterance) -> None:
        self._event({"type": "transcript", "role": "user", "text": text, "final": True})
        event_id = f"voice:{uuid.uuid4().hex}"
        prepared = self._speculation
        if prepared is not None:
            if prepared[0] == speculative.normalised(text):
                # The step adopts or cancels it; its speech keeps being made meanwhile.
                self._ctx.speculations[event_id] = prepared[1]
                self._speculation = None
            else:
                self._cancel_speculation()
        if self._unconfirmed:
            # The caller spoke while the reply was still being written: it is not wanted.
            assert self.speech is not None
            self._drop_reply(self.speech.interrupt())
        self._turn_started = time.monotonic()
        self._llm_started = None
        self._turn = {
            "speech_s": round(timings.speech_s, 3),
            "end_of_turn_ms": _ms(timings.end_of_turn - timings.speech_end),
            "end_of_turn_by": timings.ended_by,
            "turn_complete_p": None if timings.completeness is None
            else round(timings.completeness, 3),
            "stt_final_ms": _ms(timings.stt_final - timings.speech_end),
            "llm_ttft_ms": None, "tts_ttfb_ms": None, "voice_to_voice_ms": None,
            "_speech_end": timings.speech_end,
            "_speculation": None if prepared is None else prepared[1],
            "_ahead_used": self._ahead.used if self._ahead is not None else 0,
        }
        self._user_event(InboundEvent.user_turn(text, event_id=event_id))

    # --- audio out and metrics ---------------------------------------------------------

    def _send_audio(self, pcm16: bytes) -> None:
        now = time.monotonic()
        if self._greeting_ms is None:
            self._greeting_ms = _ms(now - self._connected_at)
            self._event({"type": "metrics", "greeting_first_audio_ms": self._greeting_ms})
        turn = self._turn
        if turn is not None and turn.get("voice_to_voice_ms") is None:
            turn["voice_to_voice_ms"] = _ms(now - turn["_speech_end"])
            # AICO's own share of the turn: everything after the transcript was ready that is
            # not the LLM (first token, rest of the first sentence) or the TTS first byte.
            turn["aico_ms"] = round((now - self._turn_started) * 1000) - sum(
                turn.get(k) or 0 for k in ("llm_ttft_ms", "llm_first_sentence_ms",
                                           "tts_ttfb_ms"))
            asyncio.get_running_loop().create_task(self._close_turn())
        self._send(pcm16)

    def _on_llm_start(self, at: float) -> None:
        self._llm_started = at

    def _first_audio(self, sentence: Sentence, latency_s: float) -> None:
        turn = self._turn
        if turn is not None and turn.get("tts_ttfb_ms") is None:
            turn["tts_ttfb_ms"] = _ms(latency_s)
            if "_first_token" in turn:
                # The LLM writing the rest of its first sentence (TTS needs a whole one).
                turn["llm_first_sentence_ms"] = _ms(sentence.queued_at - turn["_first_token"])

    async def _close_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        turn.pop("_speech_end", None)
        turn.pop("_first_token", None)
        # adopted / cancelled / refused (the flow may not run ahead) / None (no pause decode)
        turn["speculation"] = speculative.outcome(turn.pop("_speculation", None))
        # Whether the reply's opening was played from audio synthesized during the pause.
        used_before = turn.pop("_ahead_used", 0)
        turn["tts_ahead"] = self._ahead is not None and self._ahead.used > used_before
        if turn["speculation"] != "adopted" and self._ahead is not None:
            self._ahead.drop()
        self._event({"type": "metrics", "turn": turn})
        await self._persist(turn)

    async def _persist(self, turn: dict[str, Any] | None) -> None:
        usage: dict[str, Any] = {}
        if self.turns is not None:
            usage["stt"] = provider_usage(self.turns.stt)
        if self.speech is not None:
            usage["tts"] = provider_usage(self.speech.tts)
        if self._greeting_ms is not None:
            usage["greeting_first_audio_ms"] = self._greeting_ms
        try:
            await session_metrics.append_sessions_metrics_turn(
                self.pool, session_id=self.session_id, turn=turn, usage=usage)
        except Exception:
            log.exception("session %s: could not store metrics", self.session_id)

    def _event(self, event: dict[str, Any]) -> None:
        self._send(event)

    # --- timers ------------------------------------------------------------------------

    def _arm_no_input(self) -> None:
        self._cancel_timer("no_input")
        self._timers["no_input"] = asyncio.create_task(self._no_input())

    def _cancel_timer(self, name: str) -> None:
        task = self._timers.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _no_input(self) -> None:
        assert self.speech is not None
        await self.speech.wait_idle()
        # Only time with a live line counts: a caller whose socket dropped and is reconnecting
        # (its replica or node died) sends no frames at all, which is not a silent caller.
        live = 0.0
        while live < self.options.no_input_s:
            tick = min(NO_INPUT_TICK_S, self.options.no_input_s - live)
            await asyncio.sleep(tick)
            if time.monotonic() - self._audio_at <= LINE_QUIET_S:
                live += tick
        if self._listening and not (self.turns and self.turns.utterance):
            self._timers.pop("no_input", None)
            self._event({"type": "timer", "name": "no_input"})
            self._user_event(InboundEvent.timer_fired("no_input",
                                                      event_id=f"no_input:{uuid.uuid4().hex}"))

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.options.max_duration_s)
        self._event({"type": "timer", "name": "max_duration"})
        self._user_event(InboundEvent.timer_fired("max_duration",
                                                  event_id=f"max_duration:{uuid.uuid4().hex}"))
        await asyncio.sleep(5.0)
        if not self.ended.is_set():
            await self.speech.wait_idle() if self.speech else None
            await self.hang_up("max_duration")
            self._event({"type": "end", "reason": "max_duration"})
