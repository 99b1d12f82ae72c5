"""The packaged llama.cpp model keeps a call's prompt prefix between turns and serves several
calls at once: the second turn of a conversation reads only its new tokens (the rest comes from
the cache, as llama.cpp reports it), and the server runs `n_parallel` slots (its own `/slots`
endpoint on loopback lists them)."""

from __future__ import annotations

import secrets

import httpx

from providers.llm import ChatMessage

# A long, unique set of instructions: the prefix every turn of one call shares.
RULES = " ".join(f"Rule {i}: greet the caller, be brief, and mention the bakery's bread."
                 for i in range(25))


async def test_the_second_turn_reuses_the_cached_prompt_prefix(smollm):
    instructions = f"You are bakery {secrets.token_hex(4)}'s phone assistant. {RULES}"

    async def turn(question: str) -> tuple[int, int]:
        before = (smollm.prompt_cache.prompt_tokens, smollm.prompt_cache.cached_tokens)
        chunks = [c async for c in smollm.chat(
            [ChatMessage(role="system", content=instructions),
             ChatMessage(role="user", content=question)], max_tokens=4)]
        assert "".join(c.text for c in chunks).strip()
        return (smollm.prompt_cache.prompt_tokens - before[0],
                smollm.prompt_cache.cached_tokens - before[1])

    first_prompt, first_cached = await turn("When do you open?")
    second_prompt, second_cached = await turn("Do you sell rye bread on Sundays?")
    assert first_prompt > 300 and second_prompt > 300  # the instructions are most of it
    # The first turn read the instructions; the second found them cached and read only its
    # question (and the chat template's few tokens around it).
    assert first_cached < first_prompt // 4
    assert second_cached > second_prompt * 3 // 4, (second_prompt, second_cached)


async def test_the_server_runs_parallel_slots(smollm):
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(f"{smollm.listening_address}/slots")
    assert r.status_code == 200, r.text
    assert len(r.json()) == smollm.config.n_parallel == 8
