"""Episodic memory: what a user said, embedded after each turn (off the hot path) and recalled
by an llm node with `"memory": {"episodic": k}`.

    schedule_remember_turn(pool, snap, text, settings=settings)   # after a user.turn commits
    block = await recall_block(pool, snap, query, k=3, budget_tokens=300, settings=settings)

A session's user and cluster are set when it starts (`"user": {"id", "cluster"}`); a recall
sees the user's own turns and, for a user in a cluster, the cluster's, never the current
session's (those are in the conversation already) and never another user's outside the cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from typing import Any
from uuid import UUID

import asyncpg

from aico.settings import Settings
from db import memory_episodes as episodes_db
from db import memory_facts as facts_db
from providers.llm import ChatMessage

log = logging.getLogger("aico.flows.memory")

# A token is about four characters of English: enough to hold a budget without a tokenizer.
CHARS_PER_TOKEN = 4
MAX_EPISODE_CHARS = 2_000

_pending: set[asyncio.Task[None]] = set()
# The user's turn is embedded once: storing it (after the commit) and recalling for it (the llm
# node right after) share the one computation, which is the bulk of what memory adds to a reply.
_turn_vectors: OrderedDict[tuple[UUID, str], asyncio.Future[Any]] = OrderedDict()
_TURN_VECTORS_KEPT = 256


async def _embeddings(pool: asyncpg.Pool, org_id: UUID, settings: Settings | None) -> Any:
    from flows.knowledge import open_embeddings

    return await open_embeddings(pool, org_id=org_id, settings=settings)  # type: ignore[arg-type]


async def remember_turn(pool: asyncpg.Pool, snap: Any, text: str, *,
                        settings: Settings | None = None) -> None:
    """Embed and store one user turn of `snap`'s session (nothing without a user id)."""
    user_id = snap.get("user_id")
    text = text.strip()[:MAX_EPISODE_CHARS]
    if not user_id or not text:
        return
    vector = await _embedded_turn(pool, snap["org_id"], text, settings)
    try:
        await episodes_db.insert_episode(
            pool, org_id=snap["org_id"], user_id=user_id, user_cluster=snap.get("user_cluster"),
            session_id=snap["id"], role="user", text=text, embedding=vector)
    except asyncpg.ForeignKeyViolationError:
        pass  # the session (and so the user's data) was erased meanwhile: keep nothing


async def _embedded_turn(pool: asyncpg.Pool, org_id: UUID, text: str,
                         settings: Settings | None) -> Any:
    key = (org_id, text)
    future = _turn_vectors.get(key)
    loop = asyncio.get_running_loop()
    if future is not None and future.done() and future.exception() is None:
        return future.result()
    if future is None or future.done() or future.get_loop() is not loop:
        future = loop.create_future()
        _turn_vectors[key] = future
        if len(_turn_vectors) > _TURN_VECTORS_KEPT:
            _turn_vectors.popitem(last=False)
        try:
            embeddings = await _embeddings(pool, org_id, settings)
            [vector] = await embeddings.embed([text])
        except BaseException as exc:
            # Waiters get an ordinary error even when this caller was cancelled.
            future.set_exception(RuntimeError(f"embedding the turn failed: {exc!r}"))
            future.exception()  # retrieved: the failure is raised here, not logged as lost
            raise
        future.set_result(vector)
        return vector
    return await asyncio.shield(future)


def schedule_remember_turn(pool: asyncpg.Pool, snap: Any, text: str, *,
                           settings: Settings | None = None) -> None:
    """`remember_turn` on this loop after the step, so the reply never waits for it."""
    if not snap.get("user_id"):
        return

    _spawn(remember_turn(pool, snap, text, settings=settings),
           f"session {snap['id']}: could not store the user's turn in memory")


async def recall_block(pool: asyncpg.Pool, snap: Any, query: str, *, k: int,
                       budget_tokens: int, settings: Settings | None = None) -> str:
    """The `k` earlier turns most relevant to `query`, dated, within `budget_tokens`; "" when
    the session has no user or nothing is remembered."""
    user_id = snap.get("user_id")
    if not user_id or k <= 0 or not query.strip():
        return ""
    vector = await _embedded_turn(pool, snap["org_id"], query.strip()[:MAX_EPISODE_CHARS],
                                  settings)
    rows = await episodes_db.recall_episodes(
        pool, org_id=snap["org_id"], user_id=user_id, user_cluster=snap.get("user_cluster"),
        embedding=vector, k=k, exclude_session_id=snap["id"])
    lines: list[str] = []
    left = budget_tokens * CHARS_PER_TOKEN
    for row in rows:
        line = f"- {row['created_at']:%Y-%m-%d}: {row['text']}"
        if len(line) > left:
            break
        lines.append(line)
        left -= len(line) + 1
    if not lines:
        return ""
    return "What this user said in earlier conversations (most relevant first):\n" + "\n".join(
        lines)


def memory_query(snap: Any) -> str:
    """What to recall for: the user's latest turn in this session."""
    text = (snap.get("variables") or {}).get("user_text")
    if text:
        return str(text)
    for message in reversed((snap.get("state") or {}).get("history") or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def after_commit(pool: asyncpg.Pool, snap: Any, event: Any, *,
                 settings: Settings | None = None, document: Any = None,
                 open_llm: Any = None) -> None:
    """The executor's hook after a step committed: a user's turn is remembered, and its facts
    extracted when the flow uses them (`memory.facts`), off the reply's path."""
    if event.type != "user.turn" or not snap.get("user_id"):
        return
    text = str(event.payload.get("text", ""))
    schedule_remember_turn(pool, snap, text, settings=settings)
    if document is not None and uses_facts(document):
        _spawn(extract_facts(pool, snap, text, settings=settings, open_llm=open_llm),
               f"session {snap['id']}: could not extract the user's facts")


def uses_facts(document: Any) -> bool:
    return any(getattr(getattr(n, "memory", None), "facts", False) for n in document.nodes)


def _spawn(work: Any, failure: str) -> None:
    async def run() -> None:
        try:
            await work
        except Exception:  # memory must never break a conversation
            log.exception(failure)

    task = asyncio.create_task(run())
    _pending.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(_pending.discard)


FACT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_FACT_CHARS = 200
FACTS_FORMAT = {"type": "json_schema", "json_schema": {"name": "facts", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["facts"],
    "properties": {"facts": {"type": "array", "maxItems": 5, "items": {
        "type": "object", "additionalProperties": False, "required": ["type", "value"],
        "properties": {"type": {"type": "string"}, "value": {"type": "string"}}}}}}}}


async def extract_facts(pool: asyncpg.Pool, snap: Any, text: str, *,
                        settings: Settings | None = None,
                        open_llm: Any = None) -> list[tuple[str, str]]:
    """Ask the session's LLM (structured output) for lasting facts the user stated in `text`;
    each becomes the user's current fact of its type. Returns the facts recorded."""
    from flows.sessions import open_session_llm

    text = text.strip()[:MAX_EPISODE_CHARS]
    if not text:
        return []
    known = await facts_db.current_facts(pool, org_id=snap["org_id"], user_id=snap["user_id"])
    system = (
        "Extract lasting facts the user states about themselves in their message, as"
        " (type, value) pairs. type is a short snake_case noun (name, city, dog_name,"
        " allergy, favourite_colour); value is what they said, in a few words. Answer with"
        ' JSON only: {"facts": [{"type": ..., "value": ...}]}, an empty list when there are'
        " none." + ("\nAlready known: " + json.dumps({r["type"]: r["value"] for r in known})
                    if known else ""))
    llm = await open_session_llm(pool, snap, open_llm=open_llm, settings=settings)
    result = await llm.complete([ChatMessage(role="system", content=system),
                                 ChatMessage(role="user", content=text)],
                                response_format=FACTS_FORMAT, temperature=0.0, max_tokens=200)
    recorded = []
    for kind, value in parse_facts(result.text):
        if await facts_db.record_fact(pool, org_id=snap["org_id"], user_id=snap["user_id"],
                                      session_id=snap["id"], type=kind, value=value):
            recorded.append((kind, value))
    return recorded


def parse_facts(raw: str) -> list[tuple[str, str]]:
    """The well-formed (type, value) pairs of the model's answer; anything else is dropped."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return []
    items = data.get("facts") if isinstance(data, dict) else None
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = re.sub(r"[^a-z0-9_]+", "_", str(item.get("type", "")).strip().lower()).strip("_")
        value = str(item.get("value", "")).strip()[:MAX_FACT_CHARS]
        if FACT_TYPE.match(kind) and value:
            out[kind] = value  # the last statement of a type in one turn wins
    return list(out.items())


async def facts_block(pool: asyncpg.Pool, snap: Any) -> str:
    rows = await facts_db.current_facts(pool, org_id=snap["org_id"], user_id=snap["user_id"])
    if not rows:
        return ""
    return "What is known about this user:\n" + "\n".join(
        f"- {r['type'].replace('_', ' ')}: {r['value']}" for r in rows)


async def with_memory(pool: asyncpg.Pool, snap: Any, node: Any,
                      prompt: list[dict[str, str]], *,
                      settings: Settings | None = None) -> list[dict[str, str]]:
    """The llm node's prompt with what it asked to recall (`memory.episodic`) added to its
    system message; the prompt unchanged when it asked for nothing or nothing was found."""
    options = getattr(node, "memory", None)
    if options is None or not (options.episodic or options.facts) or not snap.get("user_id"):
        return prompt
    blocks = []
    try:
        if options.facts:
            blocks.append(await facts_block(pool, snap))
        if options.episodic:
            blocks.append(await recall_block(pool, snap, memory_query(snap), k=options.episodic,
                                             budget_tokens=options.budget_tokens,
                                             settings=settings))
    except Exception:  # a reply without memory beats no reply
        log.exception("session %s: could not recall the user's memory", snap["id"])
        return prompt
    block = "\n\n".join(b for b in blocks if b)
    if not block:
        return prompt
    system = {**prompt[0], "content": f"{prompt[0]['content']}\n\n{block}".strip()}
    return [system, *prompt[1:]]
