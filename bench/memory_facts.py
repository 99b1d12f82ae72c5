"""How well the user-facts extractor (`flows.memory_facts`) does with the packaged SmolLM2-135M
(llama.cpp in this process, temperature 0, one request at a time): a labelled set of simple
statements, each with the facts it states (none for questions and small talk). Prints every
answer and the exact-match count, the facts found (recall) and the facts right (precision).

    .venv/bin/python bench/memory_facts.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.memory_facts import (
    candidate_words,
    extraction_messages,
    facts_format,
    parse_facts,
    statements,
)
from providers.configs import LlamaCppConfig
from providers.llamacpp_llm import LlamaCppLLM

LABELLED: list[tuple[str, dict[str, str]]] = [
    ("My name is Alice.", {"name": "Alice"}),
    ("Call me Sam.", {"name": "Sam"}),
    ("I live in Lyon.", {"city": "Lyon"}),
    ("Hello! My home city is Lisbon.", {"city": "Lisbon"}),
    ("I moved: my home city is Porto now.", {"city": "Porto"}),
    ("I'm Bob, I live in Berlin.", {"name": "Bob", "city": "Berlin"}),
    ("I come from Canada.", {"country": "Canada"}),
    ("My favourite colour is green.", {"favourite_colour": "green"}),
    ("My favourite food is sushi.", {"favourite_food": "sushi"}),
    ("My dog is called Biscuit.", {"pet_name": "Biscuit"}),
    ("My cat's name is Tigger.", {"pet_name": "Tigger"}),
    ("I work as a nurse.", {"job": "nurse"}),
    ("I'm a software engineer at Acme.", {"job": "software engineer"}),
    ("I am allergic to peanuts.", {"allergy": "peanuts"}),
    ("I speak Spanish.", {"language": "Spanish"}),
    ("I am 34 years old.", {"age": "34"}),
    ("I love playing chess.", {"hobby": "chess"}),
    ("Any tips for tonight?", {}),
    ("What is my dog's name?", {}),
    ("Thanks, that helps a lot!", {}),
    ("Can you book me a table for two?", {}),
    ("The weather is nice today.", {}),
]


async def main() -> None:
    config = LlamaCppConfig()
    llm = LlamaCppLLM(config, model=LlamaCppLLM.load_model(config))
    exact = matched = stated = answered = 0
    seconds: list[float] = []
    for said, want in LABELLED:
        statement = statements(said)
        words = candidate_words(statement)
        got: dict[str, str] = {}
        if words:
            started = time.perf_counter()
            result = await llm.complete(extraction_messages(statement),
                                        response_format=facts_format(words), temperature=0.0,
                                        max_tokens=80)
            seconds.append(time.perf_counter() - started)
            got = dict(parse_facts(result.text, statement=statement))
        exact += got == want
        stated += len(want)
        answered += len(got)
        matched += sum(want.get(k) == v for k, v in got.items())
        print(f"{'ok ' if got == want else 'BAD'} {said!r:42} -> {got}", flush=True)
    print(f"\nexact {exact}/{len(LABELLED)}; facts found {matched}/{stated} (recall);"
          f" facts right {matched}/{answered} (precision); model calls {len(seconds)}"
          f" (the rest had no first-person statement), median "
          f"{statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
