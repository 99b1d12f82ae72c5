"""Replies to one llama.cpp model take turns (providers/llamacpp_llm.py): a reply past its
opening pauses while another request writes its opening, then goes on as a continuation that
llama.cpp resumes from its slot; the consumer sees one reply that goes on from where it paused
(not started again), and its usage counts every token once.

Not compared word for word with the reply written alone: llama.cpp's sums differ in the last
bits when two sequences share a batch, and greedy decoding may then take another word."""

from __future__ import annotations

import asyncio
import time

import pytest

from providers import llamacpp_llm
from providers.llamacpp_llm import _opening_done
from providers.llm import ChatMessage, Usage

SYSTEM = ChatMessage(role="system", content="You are a bakery's phone assistant. Answer in "
                     "three full sentences, with details.")
LONG = ChatMessage(role="user", content="Tell me about the breads you bake every morning.")
SHORT = ChatMessage(role="user", content="What time do you open on Saturday?")


Log = list[tuple[float, str, str, bool]]  # (when, which reply, its text, its opening written)


async def reply(llm, question: ChatMessage, log: Log, name: str,
                max_tokens: int = 48) -> tuple[str, Usage | None]:
    text, tokens, usage = "", 0, None
    async for chunk in llm.chat([SYSTEM, question], max_tokens=max_tokens, temperature=0.0):
        if chunk.text:
            text, tokens = text + chunk.text, tokens + 1
            log.append((time.monotonic(), name, text, _opening_done(text, tokens)))
        usage = chunk.usage or usage
    return text, usage


async def test_a_reply_past_its_opening_waits_for_anothers_opening(smollm, monkeypatch):
    # However slow the machine, the paused reply waits for the other opening, not a timer.
    monkeypatch.setattr(llamacpp_llm, "RESUME_AFTER_S", 60.0)
    assert smollm.config.take_turns
    alone, alone_usage = await reply(smollm, LONG, [], "alone")
    assert len(alone.split()) > 20 and alone_usage is not None

    log: Log = []
    first = asyncio.create_task(reply(smollm, LONG, log, "long"))
    while not any(name == "long" and opened for _, name, _, opened in log):
        await asyncio.sleep(0.005)
    second_started = time.monotonic()
    short, _ = await reply(smollm, SHORT, log, "short")
    long_text, long_usage = await first

    short_opened = next(t for t, name, _, opened in log if name == "short" and opened)
    during = [t for t, name, _, _ in log if name == "long" and second_started < t < short_opened]
    # At most the token already on its way when the other request came; then it waited.
    assert len(during) <= 1, during
    assert short.strip()
    # Written alone until then, the reply had said what it says alone; it went on from there.
    paused_at = [text for t, name, text, _ in log if name == "long" and t <= short_opened][-1]
    assert alone.startswith(paused_at) and long_text.startswith(paused_at)
    rest = long_text[len(paused_at):]
    assert len(rest.split()) >= 5, long_text
    opening_words = " ".join(paused_at.split()[:4])
    assert opening_words not in rest, long_text  # continued, not started again
    # Counted once: every token it sent, the prompt as the request's own.
    assert long_usage is not None
    assert long_usage.completion_tokens == sum(1 for _, name, _, _ in log if name == "long")
    assert abs(long_usage.prompt_tokens - alone_usage.prompt_tokens) <= 2, (long_usage,
                                                                           alone_usage)


@pytest.mark.parametrize("text,tokens,done", [
    ("Sure, we", 3, False),                     # a clause, but too short to speak first
    ("We open at nine.", 5, False),             # a sentence has ended only once more follows
    ("We open at nine. On", 6, True),
    ("We open at nine on Saturdays, and", 9, True),
    ("We open at nine on Saturdays and", 7, False),
    ("word " * 24, 24, True),                   # no clause end: the token bound
])
def test_what_counts_as_an_opening(text, tokens, done):
    assert _opening_done(text, tokens) is done


@pytest.mark.parametrize("text,tokens,spoken,done", [
    # A spoken reply's opening is the piece the call speaks first (providers.tts.opening_ready).
    ("The maker of", 3, True, False),
    ("The maker of the Samsung Galaxy ", 7, True, True),   # six words, no break
    ("The maker of the Samsung Galaxy ", 7, False, False),
    ("We open at nine on Saturdays and", 7, True, True),   # before the phrase word "on"
    ("Yes. ", 2, True, True),                                # a finished first sentence
    ("Yes. ", 2, False, False),
])
def test_a_spoken_replys_opening_is_what_the_call_speaks_first(text, tokens, spoken, done):
    assert _opening_done(text, tokens, spoken=spoken) is done


async def test_a_spoken_reply_waits_after_its_opening_while_it_is_synthesized(smollm,
                                                                             monkeypatch):
    monkeypatch.setattr(llamacpp_llm, "OPENING_HOLD_S", 0.6)
    requests: list[dict] = []
    stream = smollm._stream

    def counting(body, **kwargs):
        requests.append(body)
        return stream(body, **kwargs)

    monkeypatch.setattr(smollm, "_stream", counting)

    async def timed(spoken: bool) -> tuple[str, list[tuple[float, str]]]:
        requests.clear()
        text, seen = "", []
        async for chunk in smollm.chat([SYSTEM, LONG], max_tokens=40, temperature=0.0,
                                       spoken=spoken):
            if chunk.text:
                text += chunk.text
                seen.append((time.monotonic(), text))
        return text, seen

    # Other tests' requests to this model may still be ending: none may be writing an opening.
    openings = llamacpp_llm._openings_of(smollm._server)
    deadline = time.monotonic() + 30
    while openings.count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    _, _ = await timed(spoken=False)
    assert len(requests) == 1  # a text reply alone is written in one go
    spoken_text, seen = await timed(spoken=True)
    # Spoken: the opening, then the rest as a continuation after the wait.
    assert len(requests) >= 2, requests
    paused_at = requests[1]["messages"][-1]
    assert paused_at["role"] == "assistant", requests[1]
    before = [i for i, (_, text) in enumerate(seen) if text == paused_at["content"]]
    assert before, (paused_at, seen)
    assert _opening_done(paused_at["content"], before[-1] + 1, spoken=True), paused_at
    resumed = before[-1] + 1
    assert resumed < len(seen), spoken_text  # it went on after the wait, from where it was
    waited = seen[resumed][0] - seen[resumed - 1][0]
    assert waited >= 0.6 - 0.05, (waited, spoken_text)
