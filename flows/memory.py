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
import logging
from collections import OrderedDict
from typing import Any
from uuid import UUID

import asyncpg

from aico.settings import Settings
from db import memory_episodes as episodes_db
from flows.knowledge import embedding_model_key
from flows.memory_facts import extract_facts, facts_block

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
    vector, model = await _embedded_turn(pool, snap["org_id"], text, settings)
    try:
        await episodes_db.insert_episode(
            pool, org_id=snap["org_id"], user_id=user_id, user_cluster=snap.get("user_cluster"),
            session_id=snap["id"], role="user", text=text, embedding=vector, model=model)
    except asyncpg.ForeignKeyViolationError:
        pass  # the session (and so the user's data) was erased meanwhile: keep nothing


async def _embedded_turn(pool: asyncpg.Pool, org_id: UUID, text: str,
                         settings: Settings | None) -> tuple[Any, str]:
    """(the turn's vector, the embeddings model that made it)."""
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
            result = (vector, embedding_model_key(embeddings))
        except BaseException as exc:
            # Waiters get an ordinary error even when this caller was cancelled.
            future.set_exception(RuntimeError(f"embedding the turn failed: {exc!r}"))
            future.exception()  # retrieved: the failure is raised here, not logged as lost
            raise
        future.set_result(result)
        return result
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
    vector, _ = await _embedded_turn(pool, snap["org_id"], query.strip()[:MAX_EPISODE_CHARS],
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
    """The executor's hook after a step committed, off the reply's path: a user's turn is
    remembered when a flow can recall it (`memory.episodic` in this flow or any published flow
    of the organization), and its facts extracted when this flow uses them (`memory.facts`)."""
    if event.type != "user.turn" or not snap.get("user_id"):
        return
    text = str(event.payload.get("text", ""))
    _spawn(_remember_if_recalled(pool, snap, text, settings=settings,
                                 here=document is not None and uses_episodic(document)),
           f"session {snap['id']}: could not store the user's turn in memory")
    if document is not None and uses_facts(document):
        _spawn(extract_facts(pool, snap, text, settings=settings, open_llm=open_llm),
               f"session {snap['id']}: could not extract the user's facts")


async def _remember_if_recalled(pool: asyncpg.Pool, snap: Any, text: str, *,
                                settings: Settings | None, here: bool) -> None:
    # Memory costs nothing when unused: no embedding unless some flow recalls turns.
    if here or await episodes_db.org_flows_recall_episodes(pool, org_id=snap["org_id"]):
        await remember_turn(pool, snap, text, settings=settings)


def uses_facts(document: Any) -> bool:
    return any(getattr(getattr(n, "memory", None), "facts", False) for n in document.nodes)


def uses_episodic(document: Any) -> bool:
    return any(getattr(getattr(n, "memory", None), "episodic", 0) for n in document.nodes)


async def settled() -> None:
    """Wait for the memory work this process has started (stores, extractions) to end."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


def _spawn(work: Any, failure: str) -> None:
    async def run() -> None:
        try:
            await work
        except Exception:  # memory must never break a conversation
            log.exception(failure)

    task = asyncio.create_task(run())
    _pending.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(_pending.discard)


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
