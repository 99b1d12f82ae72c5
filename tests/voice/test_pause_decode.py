"""The transcript is on its way before the turn is known to be over: the pause decode starts
at DECODE_PAUSE_S of silence, the end-of-turn model is asked only at PAUSE_S, and a caller who
goes on after the short pause is not cut off (that decode becomes an interim).

Real parts: Piper speaks the caller, Silero hears the pauses, Whisper decodes, smart-turn
judges. Both are wrapped only to note how much audio the detector had heard when each was
asked; times are the audio's, not the wall clock's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from actors.call_providers import load_vad
from actors.options import VoiceOptions
from actors.turns import DECODE_PAUSE_S, PAUSE_S, RATE, TurnDetector, load_end_of_turn_model
from providers.pcm import resample_pcm16
from providers.runtime import open_stt, open_tts

FRAME = 640  # 20 ms at 16 kHz


class Noted:
    """Forwards to a real model and notes the detector's `heard_s` at every request."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.heard_at: list[float] = []
        self.detector: TurnDetector | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class NotedSTT(Noted):
    async def recognize(self, pcm16: bytes, **kw: Any) -> Any:
        assert self.detector is not None
        self.heard_at.append(self.detector.heard_s)
        return await self.inner.recognize(pcm16, **kw)

    def stream(self, **kw: Any) -> Any:
        # The buffered adapter over this object, so its decodes are noted too.
        from providers.stt import BufferedSpeechStream

        return BufferedSpeechStream(self, sample_rate=kw.get("sample_rate", RATE),  # type: ignore[arg-type]
                                    language=None)


class NotedModel(Noted):
    async def completeness(self, pcm16: bytes) -> float:
        assert self.detector is not None
        self.heard_at.append(self.detector.heard_s)
        return await self.inner.completeness(pcm16)


@pytest.fixture(scope="module")
async def parts() -> tuple[Any, Any, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AICO_MODELS", "inprocess")
        stt = await open_stt({"kind": "faster-whisper"}, secrets={})
        tts = await open_tts({"kind": "piper", "noise_scale": 0.0, "noise_w_scale": 0.0},
                             secrets={})
    model = await asyncio.to_thread(load_end_of_turn_model)
    assert model is not None
    return stt, tts, model


async def said(tts: Any, text: str) -> bytes:
    """`text` in Piper's voice at 16 kHz, from its first voiced sample to its last (Piper
    adds up to half a second of silence after a phrase; here the test decides the pauses)."""
    pcm = b"".join([f.pcm16 async for f in tts.synthesize(text)])
    samples = np.frombuffer(resample_pcm16(pcm, tts.sample_rate, RATE), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    return samples[loud[0]:loud[-1] + 1].tobytes()


def detector(stt: NotedSTT, model: NotedModel, turns: list[str]) -> TurnDetector:
    det = TurnDetector(load_vad(), stt, VoiceOptions(end_of_turn_silence_s=1.5),  # type: ignore[arg-type]
                       agent_speaking=lambda: False, on_speech_start=lambda u: None,
                       on_barge_in=lambda u: None,
                       on_turn=lambda text, timings, u: turns.append(text),
                       on_interim=lambda text: None, on_discard=lambda u, why: None,
                       end_of_turn_model=model)  # type: ignore[arg-type]
    stt.detector = model.detector = det
    return det


async def feed(det: TurnDetector, pcm: bytes) -> None:
    """In real time, as a caller's line delivers it: frame n is pushed at n × 20 ms (a late
    push does not delay the ones after it, so the detector's clock keeps to the audio's on a
    busy machine too). The decode and the verdict run meanwhile."""
    start = time.monotonic()
    for n, i in enumerate(range(0, len(pcm), FRAME)):
        det.push(pcm[i:i + FRAME])
        await asyncio.sleep(max(0.0, start + (n + 1) * FRAME / (2 * RATE) - time.monotonic()))


async def wait_for_turn(turns: list[str]) -> None:
    """Until the detector has ended a turn (10 s at most)."""
    for _ in range(200):
        if turns:
            return
        await asyncio.sleep(0.05)


def assert_one_turn_with_both_phrases(turns: list[str]) -> None:
    """"I would like" and "a birthday cake for Saturday." made one turn."""
    assert len(turns) == 1, turns
    assert "like" in turns[0].lower() and "cake" in turns[0].lower(), turns


async def test_the_decode_starts_before_the_model_is_asked(parts) -> None:
    stt_inner, tts, model_inner = parts
    stt, model = NotedSTT(stt_inner), NotedModel(model_inner)
    turns: list[str] = []
    det = detector(stt, model, turns)
    speech = b"\0\0" * (RATE // 4) + await said(tts, "What time do you open tomorrow?")
    await feed(det, speech + b"\0\0" * RATE)
    await wait_for_turn(turns)
    assert turns and "open" in turns[0].lower(), turns
    spoken_s = len(speech) / (2 * RATE)
    [decoded_at] = stt.heard_at  # one decode: the pause's, reused as the final
    assert model.heard_at, "the end-of-turn model was never asked"
    # Silence heard when each was asked (the VAD decides on 32 ms windows, frames are 20 ms).
    decode_silence = decoded_at - spoken_s
    model_silence = model.heard_at[0] - spoken_s
    # (Silero's probability decays over a few windows after the voice: both come ≈50 ms
    # after their nominal silence.)
    assert decode_silence >= DECODE_PAUSE_S
    assert model_silence >= PAUSE_S
    # The transcript gets a head start of at least 50 ms of audio on the verdict.
    assert model_silence - decode_silence >= max(0.05, PAUSE_S - DECODE_PAUSE_S - 0.02)


async def test_a_caller_who_goes_on_after_a_short_pause_makes_one_turn(parts) -> None:
    stt_inner, tts, model_inner = parts
    stt, model = NotedSTT(stt_inner), NotedModel(model_inner)
    turns: list[str] = []
    det = detector(stt, model, turns)
    # A gap the VAD calls a pause of DECODE_PAUSE_S but not of PAUSE_S (with its ≈50 ms
    # decay after the voice): decoded, not judged.
    gap = b"\0\0" * int(RATE * ((DECODE_PAUSE_S + PAUSE_S) / 2 + 0.055))
    speech = (b"\0\0" * (RATE // 4) + await said(tts, "I would like") + gap
              + await said(tts, "a birthday cake for Saturday."))
    await feed(det, speech + b"\0\0" * RATE)
    await wait_for_turn(turns)
    assert_one_turn_with_both_phrases(turns)
    assert len(stt.heard_at) == 2  # the short pause's decode, then the final's
    assert len(model.heard_at) == 1  # the model heard only the real pause
    await det.aclose()


async def test_a_pause_whose_frames_arrive_late_lasts_as_long_as_its_audio(parts) -> None:
    # The actor is starved of CPU in the middle of a short pause: the caller's next frames
    # arrive seconds late, in a burst. The pause is the audio's (well under PAUSE_S), not
    # the wall clock's (past the end-of-turn silence): one turn, not the words before it.
    stt_inner, tts, model_inner = parts
    stt, model = NotedSTT(stt_inner), NotedModel(model_inner)
    turns: list[str] = []
    det = detector(stt, model, turns)
    before = b"\0\0" * (RATE // 4) + await said(tts, "I would like") + b"\0\0" * int(RATE * 0.14)
    await feed(det, before)
    assert det.utterance is not None and det.utterance.paused_at is not None, \
        "the VAD heard no pause before the stall"
    await asyncio.sleep(det.options.end_of_turn_silence_s + 0.5)
    await feed(det, await said(tts, "a birthday cake for Saturday.") + b"\0\0" * RATE)
    await wait_for_turn(turns)
    assert_one_turn_with_both_phrases(turns)
    await det.aclose()
