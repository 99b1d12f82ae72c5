"""Piper shared by many calls: sentences from several calls synthesize at once, and a caller
waiting for audio now goes ahead of a sentence that is not needed yet (a playing reply's next).

Real packaged voice (joe medium), loaded once per test with its own slot count.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from providers.configs import PiperConfig
from providers.piper_tts import PiperTTS, PiperVoiceModel

# One sentence that takes a while to synthesize (no full stop inside: Piper splits there).
LONG = ("Our bakery on the corner of Main Street opens every morning at seven, closes at six "
        "in the evening, bakes sourdough, rye and spelt loaves, croissants and cinnamon rolls, "
        "and takes orders for birthday cakes, wedding cakes and office parties by phone")
LATER = "This second sentence of an earlier reply can wait while its first one plays."


def voice(parallel: int) -> tuple[PiperConfig, PiperVoiceModel]:
    config = PiperConfig(parallel=parallel)
    return config, PiperTTS.load_model(config)


async def audio_of(tts: PiperTTS, text: str, log: list[str], name: str, *,
                   slack_s: float = 0.0) -> list[bytes]:
    chunks = []
    async for frame in tts.synthesize(text, slack_s=slack_s):
        chunks.append(frame.pcm16)
        log.append(f"{name}{len(chunks)}")
    return chunks


async def holding_the_slot(model: PiperVoiceModel) -> tuple[asyncio.Future[None],
                                                              threading.Event]:
    """Another call's synthesis holds one slot until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with model.slots.slot(due=time.monotonic(), cost=0):
            held.set()
            release.wait()

    holder = asyncio.get_running_loop().run_in_executor(None, hold)
    await wait_until(held.is_set)
    return holder, release


async def wait_until(condition, *, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def test_two_calls_synthesize_at_once_on_one_voice() -> None:
    config, model = voice(parallel=2)
    first, second = PiperTTS(config, model=model), PiperTTS(config, model=model)
    log: list[str] = []

    a, b = await asyncio.gather(audio_of(first, LONG, log, "a"), audio_of(second, LONG, log, "b"))

    assert model.slots.most_at_once == 2  # both sentences were in the model together
    # Each call got its own whole sentence: several seconds of speech, not silence.
    for chunks in (a, b):
        assert len(chunks) == 1 and len(chunks[0]) / 2 / model.sample_rate > 5.0
        assert max(abs(int.from_bytes(chunks[0][i:i + 2], "little", signed=True))
                   for i in range(0, len(chunks[0]), 400)) > 1000


async def test_one_slot_runs_one_sentence_at_a_time() -> None:
    config, model = voice(parallel=1)
    calls = [PiperTTS(config, model=model) for _ in range(3)]
    log: list[str] = []

    await asyncio.gather(*(audio_of(tts, "Hello, bakery here.", log, str(i))
                           for i, tts in enumerate(calls)))

    assert model.slots.most_at_once == 1
    assert sorted(log) == ["01", "11", "21"]


def one_lane(model: PiperVoiceModel) -> PiperVoiceModel:
    """Every sentence in the first lane, as on a GPU: the order within it is what is tested."""
    model.slots.later_parallel = 0
    return model


async def test_a_caller_waiting_goes_ahead_of_a_sentence_not_needed_yet() -> None:
    config, model = voice(parallel=1)
    one_lane(model).slots.max_wait_s = 600  # this test is about the order, not starvation
    playing, other, caller = (PiperTTS(config, model=model) for _ in range(3))
    log: list[str] = []
    holder, release = await holding_the_slot(model)
    # Queued in this order while another call's synthesis holds the one slot: a playing
    # reply's next sentence (its caller hears 30 s of audio before it), a long sentence and a
    # short one that callers are waiting for now.
    later = asyncio.create_task(audio_of(playing, LATER, log, "later", slack_s=30.0))
    await wait_until(lambda: model.slots.waiting() == 1)
    long_one = asyncio.create_task(audio_of(other, LONG, log, "long"))
    await wait_until(lambda: model.slots.waiting() == 2)
    answer = asyncio.create_task(audio_of(caller, "We open at seven.", log, "answer"))
    await wait_until(lambda: model.slots.waiting() == 3)
    release.set()
    await holder
    await asyncio.gather(later, long_one, answer)

    # The callers waiting first, the shorter before the longer; the sentence with slack last.
    assert log == ["answer1", "long1", "later1"]


async def test_a_replys_next_sentence_is_due_once_its_first_has_played() -> None:
    config, model = voice(parallel=1)
    one_lane(model).slots.max_wait_s = 600
    playing, other, caller = (PiperTTS(config, model=model) for _ in range(3))
    log: list[str] = []
    holder, release = await holding_the_slot(model)
    # Its first sentence plays ≈1 s: its second is not urgent for a good while after.
    reply = asyncio.create_task(audio_of(playing, f"Yes, we do. {LATER}", log, "reply"))
    await wait_until(lambda: model.slots.waiting() == 1)
    long_one = asyncio.create_task(audio_of(other, LONG, log, "long"))
    await wait_until(lambda: model.slots.waiting() == 2)
    release.set()
    await holder
    # The reply's short first sentence goes first; its second is not needed until that has
    # played, so the long sentence a caller waits for takes the slot.
    await wait_until(lambda: log == ["reply1"])
    await wait_until(lambda: model.slots.waiting() == 1)
    # Meanwhile a caller finishes a turn; by the time the slot is free both wait, and the
    # shorter goes first.
    answer = asyncio.create_task(audio_of(caller, "We open at seven.", log, "answer"))
    await asyncio.gather(reply, long_one, answer)

    assert log == ["reply1", "long1", "answer1", "reply2"]


async def test_a_sentence_not_needed_yet_runs_in_its_own_lane_at_low_priority() -> None:
    config, model = voice(parallel=1)
    playing, caller = PiperTTS(config, model=model), PiperTTS(config, model=model)
    log: list[str] = []
    holder, release = await holding_the_slot(model)  # the first lane's one slot is busy
    try:
        # A playing reply's next sentence does not wait for it: it has a lane of its own.
        later = await asyncio.wait_for(
            audio_of(playing, LATER, log, "later", slack_s=30.0), timeout=60)
        assert log == ["later1"] and model.slots.started[-1][1] == "later"
    finally:
        release.set()
        await holder
    await audio_of(caller, "We open at seven.", log, "answer")  # a caller waits: first lane
    assert [lane for _, lane in model.slots.started] == ["now", "later", "now"]

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert model.later.submit(nice).result() == max(19, nice())
    # The same voice on its one-thread session: the whole sentence, seconds of speech.
    assert len(later) == 1 and len(later[0]) / 2 / model.sample_rate > 2.0


async def test_a_sentence_that_waited_in_the_low_lane_moves_up_when_it_is_due() -> None:
    config, model = voice(parallel=1)
    tts = PiperTTS(config, model=model)
    log: list[str] = []
    held, release = threading.Event(), threading.Event()

    def hold_the_low_lane() -> None:
        with model.slots.slot(due=time.monotonic() + 600, cost=0):
            held.set()
            release.wait()

    model.slots.later_s_per_cost = 0.001  # a quiet box: only LATER_S decides here
    holder = asyncio.get_running_loop().run_in_executor(None, hold_the_low_lane)
    await wait_until(held.is_set)
    try:
        # Due in 1.5 s: it waits for the busy low lane, and once it is due within a second
        # it takes the free first lane.
        await asyncio.wait_for(audio_of(tts, LATER, log, "later", slack_s=1.5), timeout=60)
        assert log == ["later1"]
        assert [lane for _, lane in model.slots.started] == ["later", "now"]
    finally:
        release.set()
        await holder


async def test_a_sentence_goes_to_the_low_lane_only_with_time_to_synthesize_it_there() -> None:
    config, model = voice(parallel=1)
    tts = PiperTTS(config, model=model)
    log: list[str] = []
    model.slots.later_s_per_cost = 0.02  # the low lane lately slow: 2 s per 100 phonemes
    # Needed in 5 s: the long sentence would take longer than that to spare there, the short
    # one would not.
    await audio_of(tts, LONG, log, "long", slack_s=5.0)
    await audio_of(tts, "We open at seven.", log, "short", slack_s=5.0)
    assert [lane for _, lane in model.slots.started] == ["now", "later"]
    # What the short one took there is the lane's new pace.
    assert model.slots.later_s_per_cost != 0.02


@pytest.mark.parametrize("parallel", [0, 17])
def test_parallel_is_bounded(parallel: int) -> None:
    with pytest.raises(ValueError, match="parallel"):
        PiperConfig(parallel=parallel)


async def test_a_caller_who_barges_in_leaves_the_queue_at_once() -> None:
    config, model = voice(parallel=1)
    tts = PiperTTS(config, model=model)
    holder, release = await holding_the_slot(model)
    log: list[str] = []
    reply = asyncio.create_task(audio_of(tts, "We open at seven.", log, "reply"))
    await wait_until(lambda: model.slots.waiting() == 1)

    reply.cancel()  # the caller spoke over the agent: the pipeline drops the reply
    try:
        await asyncio.wait({reply}, timeout=60)  # a deadline: it ends at once or never
        # Gone while the slot is still busy elsewhere: nothing waits, nothing synthesized.
        assert reply.cancelled()
        assert model.slots.waiting() == 0 and log == []
    finally:
        release.set()
        await holder
    assert [lane for _, lane in model.slots.started] == ["now"]
