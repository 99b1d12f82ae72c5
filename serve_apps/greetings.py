"""Greetings ready before the first call.

A flow's greeting is its opening `say` texts, spoken before it first listens: the same audio on
every call of a version. When a version is published (and, at `aico up`, for every published
flow) their audio is put in the greeting cache of the `models` app's TTS deployment, which every
call actor asks before synthesizing (actors/speech_out.py), so even a call on a fresh actor
plays the greeting without waiting for synthesis.

The first reply is readied the same way: the prompt an `llm` node sends on a call's first turn
starts with the same system message and greeting on every call, so that prefix is read once by
the `models` app's LLM (one token asked for) and llama.cpp keeps it; the first caller's question
does not wait for the model to read the whole prompt.

    texts = opening_says(document)             # ["Hello! Say billing or support."]
    await cache_flow_greeting(document)        # synthesized into the deployment's cache
    await warm_flow_prompts(document)          # the first turn's prompt prefix read by the LLM
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("aico.greetings")

MAX_OPENING_NODES = 20
# How long publishing waits for its greeting to be synthesized before answering (the rest
# finishes in the background).
PUBLISH_WAIT_S = 5.0

_background: set[asyncio.Task[Any]] = set()


def opening_says(document: Mapping[str, Any]) -> list[str]:
    """The `say` texts a call of this flow speaks first, in order, up to the first node that is
    not a `say`, a branch, or a text rendered per call (a template)."""
    nodes = {str(n.get("id")): n for n in document.get("nodes") or []}
    outgoing: dict[str, list[Mapping[str, Any]]] = {}
    for edge in document.get("edges") or []:
        outgoing.setdefault(str(edge.get("from")), []).append(edge)
    node = next((n for n in nodes.values() if n.get("type") == "start"), None)
    texts: list[str] = []
    seen: set[str] = set()
    while node is not None and str(node.get("id")) not in seen and len(seen) < MAX_OPENING_NODES:
        seen.add(str(node.get("id")))
        if node.get("type") == "say":
            text = str(node.get("text") or "").strip()
            if not text or "{" in text:  # rendered from the call's variables
                break
            texts.append(text)
        elif node.get("type") != "start":
            break
        edges = outgoing.get(str(node.get("id")), [])
        if len(edges) != 1 or edges[0].get("when"):
            break
        node = nodes.get(str(edges[0].get("to")))
    return texts


MAX_WARM_PROMPTS = 20
# What stands for the caller's first words in a warming request: the prefix before it is what
# llama.cpp keeps.
WARM_USER_TEXT = "Hello."


def first_turn_prompts(document: Mapping[str, Any]) -> list[list[dict[str, str]]]:
    """The messages each `llm` node of this flow would send on a voice call's first turn, with
    a stand-in for the caller's words: system message (its instructions, when they are not a
    per-call template, and the voice hint), the greeting as the assistant said it, a user turn."""
    from flows.document import LLMNode
    from flows.llm_context import llm_messages

    greeting = [{"role": "assistant", "content": text} for text in opening_says(document)]
    prompts: list[list[dict[str, str]]] = []
    for raw in document.get("nodes") or []:
        if raw.get("type") != "llm" or "{" in str(raw.get("instructions") or ""):
            continue
        try:
            node = LLMNode.model_validate(raw)
            prompt = llm_messages(node, variables={}, channel="voice",
                                  history=[*greeting, {"role": "user", "content": WARM_USER_TEXT}])
        except Exception as err:  # noqa: BLE001 - a node we cannot read is simply not warmed
            log.debug("llm node not warmed: %s", err)
            continue
        if prompt not in prompts:
            prompts.append(prompt)
    return prompts


async def warm_prompts(prompts: Iterable[list[dict[str, str]]]) -> int:
    """Have the `models` app's LLM read each prompt (one token generated); how many were read."""
    prompts = list(prompts)[:MAX_WARM_PROMPTS]
    if not prompts:
        return 0
    handle = await deployment("llm")
    if handle is None:
        return 0
    if await handle.read_prompts.remote(prompts) >= 0:  # into every slot, not only one
        return len(prompts)
    read = 0
    for messages in prompts:
        async for _ in handle.options(stream=True).chat.remote(messages, max_tokens=1,
                                                               temperature=0.0):
            pass
        read += 1
    return read


async def warm_flow_prompts(document: Mapping[str, Any]) -> int:
    return await warm_prompts(first_turn_prompts(document))


async def tts_deployment() -> Any | None:
    return await deployment("tts")


async def deployment(name: str) -> Any | None:
    """A handle on a deployment of the `models` app, or None when it is not running here."""
    from providers.runtime import models_app_handle

    return await models_app_handle(name)


async def cache_greetings(texts: Iterable[str]) -> int:
    """Synthesize `texts` into the TTS deployment's greeting cache; how many pieces were new."""
    texts = [t for t in texts if t]
    if not texts:
        return 0
    handle = await tts_deployment()
    if handle is None:
        return 0
    return int(await handle.cache_greetings.remote(texts))


async def cache_flow_greeting(document: Mapping[str, Any]) -> int:
    return await cache_greetings(opening_says(document))


async def cache_published_greeting(document: Mapping[str, Any], *,
                                   wait_s: float = PUBLISH_WAIT_S) -> None:
    """For the publish route: the greeting is cached before the route answers, unless that
    takes longer than `wait_s` (a busy TTS); then it finishes in the background, and so does
    reading the first turn's prompt. Never raises: a call without a cached greeting
    synthesizes it."""
    loop = asyncio.get_running_loop()
    greeting = loop.create_task(_logged(cache_flow_greeting(document)))

    async def then_the_prompt() -> int:
        await asyncio.wait([greeting])  # a caller hears the greeting first: it goes first
        return await _logged(warm_flow_prompts(document))

    for task in (greeting, loop.create_task(then_the_prompt())):
        _background.add(task)
        task.add_done_callback(_background.discard)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(greeting), wait_s)


async def cache_every_published_greeting(pool: Any, *, limit: int = 1000) -> int:
    """Every published flow's greeting (the latest version of each, the `limit` newest), for
    `aico up`'s start; `pool` is the owner's (it reads every organization's flows)."""
    from db.published_flows import list_flow_versions_latest_everywhere

    texts: list[str] = []
    prompts: list[list[dict[str, str]]] = []
    for row in await list_flow_versions_latest_everywhere(pool, limit=limit):
        for text in opening_says(row["document"] or {}):
            if text not in texts:
                texts.append(text)
        prompts.extend(p for p in first_turn_prompts(row["document"] or {}) if p not in prompts)
    made = await cache_greetings(texts)
    await _logged(warm_prompts(prompts))
    return made


async def _logged(work: Any) -> int:
    try:
        return int(await work)
    except Exception:  # the greeting is synthesized on the first call instead
        log.warning("could not cache a flow's greeting", exc_info=True)
        return 0
