"""When is the caller done? The end-of-turn model (smart-turn) listens at every pause: a
finished sentence ends the turn without waiting for the fallback silence, and a caller who
stops mid-sentence to think is not cut off while the silence stays under that fallback.

Real parts throughout: Piper speaks the caller, Silero hears the pauses, smart-turn judges
them, Whisper transcribes through the buffered `STT.stream()` adapter, the flow answers."""

from __future__ import annotations

from typing import Any

from test_voice_call import voice_session
from voice_api import transcript, wait_status
from voice_call_client import CallClient, user_lines
from voice_flows import GREETING, HOURS, bakery_flow

FALLBACK_S = 3.0  # the silence that ends a turn the model does not call finished
RATE = 16000


def patient_bakery(*, model: bool) -> dict[str, Any]:
    flow = bakery_flow()
    flow["variables"]["voice_end_of_turn_silence_s"] = {"type": "number",
                                                        "default": FALLBACK_S}
    flow["variables"]["voice_end_of_turn_model"] = {"type": "boolean", "default": model}
    return flow


def turn_metrics(call: CallClient) -> list[dict[str, Any]]:
    return [e["turn"] for _, e in call.events if e.get("type") == "metrics" and "turn" in e]


def agent_finals(call: CallClient, *, after: float) -> list[str]:
    return [e["text"] for t, e in call.events if t >= after and e.get("type") == "transcript"
            and e.get("role") == "agent" and e.get("final")]


async def test_a_finished_question_ends_the_turn_on_the_models_word(api, voice_server, voices):
    session_id, url = await voice_session(api, voice_server, patient_bakery(model=True))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_finals(call, after=spoke) == [HOURS]
        [turn] = turn_metrics(call)
        # The model, not the 2 s of silence, ended the turn.
        assert turn["end_of_turn_by"] == "model"
        assert turn["turn_complete_p"] > 0.5
        assert turn["end_of_turn_ms"] < FALLBACK_S * 1000
    record = await wait_status(api, session_id, "ended")
    [stored] = record["metrics"]["turns"]
    assert stored["end_of_turn_by"] == "model"
    assert stored["turn_complete_p"] == turn["turn_complete_p"]
    assert transcript(record)[:3] == [("assistant", GREETING), ("user", user_lines(call)[0]),
                                      ("assistant", HOURS)]
    assert "hour" in user_lines(call)[0].lower()


async def test_without_the_model_the_silence_alone_ends_the_turn(api, voice_server, voices):
    session_id, url = await voice_session(api, voice_server, patient_bakery(model=False))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(await voices.caller("What are your hours?"))
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        assert agent_finals(call, after=spoke) == [HOURS]
        [turn] = turn_metrics(call)
        assert turn["end_of_turn_by"] == "silence"
        assert turn["turn_complete_p"] is None
        assert turn["end_of_turn_ms"] >= FALLBACK_S * 1000
    record = await wait_status(api, session_id, "ended")
    assert [t["end_of_turn_by"] for t in record["metrics"]["turns"]] == ["silence"]


async def test_a_caller_who_pauses_mid_sentence_is_not_cut_off(api, voice_server, voices):
    session_id, url = await voice_session(api, voice_server, patient_bakery(model=True))
    thinking = b"\0\0" * RATE  # one second: longer than the old fixed end-of-turn silence
    # Clearly unfinished words (smart-turn: p ≈ 0.01 on Piper's voice, against ≈ 0.98 for
    # "What are your hours?").
    words = (await voices.caller("My name is John and I") + thinking
             + await voices.caller("would like to know your hours."))
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        spoke = await call.say(words)
        await call.wait_event("agent_speech_ended", after=spoke, timeout=60)
        # One turn with both halves, answered once.
        heard = user_lines(call)
        assert len(heard) == 1, heard
        assert "name" in heard[0].lower() and "hour" in heard[0].lower()
        assert agent_finals(call, after=spoke) == [HOURS]
        # What the pipeline had at the pause reached the caller's screen as an interim.
        interims = [e["text"].lower() for _, e in call.events if e.get("type") == "transcript"
                    and e.get("role") == "user" and not e.get("final")]
        assert any("name" in text and "hour" not in text for text in interims), interims
        # The model was asked at the last pause too (with the thinking gap inside its 8 s
        # window it is less sure of a finished sentence: then the fallback silence ends it).
        [turn] = turn_metrics(call)
        assert turn["turn_complete_p"] is not None
    record = await wait_status(api, session_id, "ended")
    assert transcript(record) == [("assistant", GREETING), ("user", heard[0]),
                                  ("assistant", HOURS)]
    assert len(record["metrics"]["turns"]) == 1
