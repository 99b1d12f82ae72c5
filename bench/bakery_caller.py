"""The caller the call benchmarks share (bench/voice.py, bench/phone.py): the bakery flow it
calls (greets, listens, answers each question with a fixed line or the LLM), its question
spoken by Piper at the caller's rate (16 kHz on the WebSocket, 8 kHz on a phone line), and the
percentile the reports print."""

from __future__ import annotations

from typing import Any

import numpy as np

CALLER_LINE = "Could you tell me what time the bakery opens tomorrow morning?"


def bakery_flow(name: str, *, llm: bool,
                variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Greets, then answers every question: with the LLM (one short sentence) or a fixed line.
    `variables` adds to the flow's own (e.g. a longer `voice_no_input_s` for a slow machine)."""
    answer: dict[str, Any] = (
        {"id": "answer", "type": "llm", "max_tokens": 40, "temperature": 0, "history": False,
         "instructions": "You are a bakery's phone assistant. Answer in one short sentence."}
        if llm else {"id": "answer", "type": "say", "text": "We open at seven in the morning."})
    return {"name": name, "variables": {"q": {"type": "string", "default": ""},
                                        **(variables or {})},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "greet", "type": "say", "text": "Hello, bakery here. How can I help?"},
                      {"id": "listen", "type": "listen", "into": "q"}, answer],
            "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                      {"from": "listen", "to": "answer"}, {"from": "answer", "to": "listen"}]}


async def caller_line(tts: Any, rate: int, text: str = CALLER_LINE) -> bytes:
    """`text` as the caller says it: Piper's speech resampled to `rate` (16-bit PCM)."""
    from providers.pcm import resample_pcm16

    chunks = [f.pcm16 async for f in tts.synthesize(text)]
    return resample_pcm16(b"".join(chunks), tts.sample_rate, rate)


def pct(xs: list[float], p: float) -> float | None:
    return round(float(np.percentile(xs, p)), 1) if xs else None
