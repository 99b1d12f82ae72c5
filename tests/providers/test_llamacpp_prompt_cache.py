"""The packaged llama.cpp model keeps a call's prompt prefix between turns and serves several
calls at once: the second turn of a conversation reads only its new tokens (the rest comes from
the cache, as llama.cpp reports it), and the server runs `n_parallel` slots (its own `/slots`
endpoint on loopback lists them)."""

from __future__ import annotations

import asyncio
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


async def test_a_short_unrelated_request_does_not_push_a_calls_prompt_out(smollm):
    """Between two calls of a flow, a voice actor's start-up ping ("Hi", no system message)
    reaches the same model. It shares only the chat template's first tokens with the flow's
    prompt; it must not take the slot that holds that prompt (nor the idle slots be moved out
    of the KV cache), so the flow's next call reads only its question again."""
    hint = (f"Channel {secrets.token_hex(4)}: you are speaking on a live voice call. Reply in"
            " short, plain, speakable sentences. No markdown, lists, emoji or URLs.")
    system = [ChatMessage(role="system",
                          content=f"{hint}\n\nYou are a phone agent. Answer in one short sentence.")]
    question = "Could you tell me what time the bakery opens tomorrow morning?"

    async def ask(messages: list[ChatMessage], max_tokens: int) -> int:
        """The prompt tokens llama.cpp read (not found in its cache)."""
        before = (smollm.prompt_cache.prompt_tokens, smollm.prompt_cache.cached_tokens)
        async for _ in smollm.chat(messages, max_tokens=max_tokens, temperature=0.7):
            pass
        return ((smollm.prompt_cache.prompt_tokens - before[0])
                - (smollm.prompt_cache.cached_tokens - before[1]))

    # As the LLM deployment starts and a flow is published: every slot holds the channel's
    # hint, one the flow's prompt.
    await asyncio.to_thread(smollm.warm_slots, [hint])
    await ask([*system, ChatMessage(role="user", content="Hello.")], 1)
    read = []
    for _ in range(10):  # a call: the new actor's ping, then the caller's question
        await ask([ChatMessage(role="user", content="Hi")], 2)
        read.append(await ask([*system, ChatMessage(role="user", content=question)], 64))
    # After the first call each reads at most its last token or two (llama.cpp always
    # evaluates one).
    assert max(read[1:]) <= 2, read
