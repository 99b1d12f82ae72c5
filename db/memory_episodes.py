"""The `memory_episodes` table (a user's turns, embedded, with their cluster) and the erasure of
everything stored about a user: their episodes, their facts, their sessions (whose events,
transcripts, call intents and live events go with them, by cascade), and what channels keep
under the user's id (WhatsApp messages by wa id, phone calls by number)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from db import reembedding
from db.pool import Conn, org_transaction


async def insert_episode(conn: Conn, *, org_id: UUID, user_id: str, user_cluster: str | None,
                         session_id: UUID | None, role: str, text: str, embedding: Any,
                         model: str = "minilm") -> None:
    async with org_transaction(conn, org_id) as c:
        await c.execute(
            "INSERT INTO memory_episodes (org_id, user_id, user_cluster, session_id, role, text,"
            " embedding, embedding_model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            org_id, user_id, user_cluster, session_id, role, text, embedding, model)


async def stale_episodes(conn: Conn, *, org_id: UUID, model: str,
                         limit: int) -> list[asyncpg.Record]:
    """Up to `limit` of the organization's episodes embedded with another model than `model`."""
    return await reembedding.stale_rows(conn, "memory_episodes", org_id=org_id, model=model,
                                        limit=limit)


async def set_episode_embeddings(conn: Conn, *, org_id: UUID, model: str,
                                 vectors: Sequence[tuple[int, Any]]) -> None:
    await reembedding.set_embeddings(conn, "memory_episodes", org_id=org_id, model=model,
                                     vectors=vectors)


async def org_flows_recall_episodes(conn: Conn, *, org_id: UUID) -> bool:
    """Whether the latest published version of any of the organization's flows has a node that
    recalls earlier turns (`memory.episodic` > 0): only then is a user's turn worth embedding."""
    async with org_transaction(conn, org_id) as c:
        return bool(await c.fetchval(
            "SELECT EXISTS (SELECT 1 FROM flows f JOIN flow_versions v ON v.flow_id = f.id"
            " AND v.version = f.latest_version WHERE f.org_id = $1 AND f.deleted_at IS NULL"
            " AND jsonb_path_exists(v.document, '$.nodes[*] ? (@.memory.episodic > 0)'))",
            org_id))


async def recall_episodes(conn: Conn, *, org_id: UUID, user_id: str, user_cluster: str | None,
                          embedding: Any, k: int,
                          exclude_session_id: UUID | None = None) -> list[asyncpg.Record]:
    """The `k` episodes nearest to `embedding` among the user's own and, when the user is in a
    cluster, that cluster's; never the ones of `exclude_session_id` (the current session)."""
    async with org_transaction(conn, org_id) as c:
        await c.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        return await c.fetch(
            "SELECT id, user_id, text, created_at, embedding <=> $4 AS distance"
            " FROM memory_episodes WHERE org_id = $1"
            " AND (user_id = $2 OR (user_cluster IS NOT NULL AND user_cluster = $3))"
            " AND session_id IS DISTINCT FROM $6"
            " ORDER BY embedding <=> $4 LIMIT $5",
            org_id, user_id, user_cluster, embedding, k, exclude_session_id)


async def list_user_episodes(conn: Conn, *, org_id: UUID, user_id: str, limit: int,
                             offset: int) -> tuple[int, list[asyncpg.Record]]:
    """(how many the user has, one page of them, newest first)."""
    async with org_transaction(conn, org_id) as c:
        total = await c.fetchval(
            "SELECT count(*) FROM memory_episodes WHERE org_id = $1 AND user_id = $2",
            org_id, user_id)
        rows = await c.fetch(
            "SELECT id, user_cluster, session_id, role, text, created_at FROM memory_episodes"
            " WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC, id DESC"
            " LIMIT $3 OFFSET $4", org_id, user_id, limit, offset)
    return int(total), rows


async def delete_user_data(conn: Conn, *, org_id: UUID, user_id: str) -> dict[str, int]:
    """Erase the user's episodes and sessions (with everything that hangs off a session)."""
    async with org_transaction(conn, org_id) as c:
        episodes = await c.execute(
            "DELETE FROM memory_episodes WHERE org_id = $1 AND user_id = $2", org_id, user_id)
        facts = await c.execute(
            "DELETE FROM memory_facts WHERE org_id = $1 AND user_id = $2", org_id, user_id)
        ids = [r["id"] for r in await c.fetch(
            "SELECT id FROM sessions WHERE org_id = $1 AND user_id = $2", org_id, user_id)]
        # What other features copied out of the user's sessions without a cascading key: webhook
        # deliveries (turn texts), WhatsApp messages sent, idempotent replies kept for retries.
        await c.execute("DELETE FROM webhook_deliveries WHERE org_id = $1"
                        " AND session_id = ANY($2::uuid[])", org_id, ids)
        await c.execute(
            "DELETE FROM whatsapp_statuses s WHERE org_id = $1 AND EXISTS (SELECT 1 FROM"
            " whatsapp_outbox o WHERE o.org_id = $1 AND o.number_id = s.number_id"
            " AND o.wamid = s.wamid AND (o.wa_user = $2 OR o.session_id = ANY($3::uuid[])))",
            org_id, user_id, ids)
        await c.execute("DELETE FROM whatsapp_outbox WHERE org_id = $1"
                        " AND session_id = ANY($2::uuid[])", org_id, ids)
        await c.execute(
            "DELETE FROM idempotency_keys k WHERE org_id = $1 AND EXISTS (SELECT 1 FROM"
            " unnest($2::uuid[]) s(id) WHERE k.response::text LIKE '%' || s.id::text || '%')",
            org_id, ids)
        # A WhatsApp user is their wa id and a caller their number (the sessions' user_id):
        # their messages in and out, the statuses of those sent, and the calls' records.
        await c.execute("DELETE FROM whatsapp_outbox WHERE org_id = $1 AND wa_user = $2",
                        org_id, user_id)
        await c.execute("DELETE FROM whatsapp_conversations WHERE org_id = $1 AND wa_user = $2",
                        org_id, user_id)
        await c.execute("DELETE FROM whatsapp_inbox WHERE org_id = $1 AND wa_user = $2",
                        org_id, user_id)
        await c.execute("DELETE FROM phone_calls WHERE org_id = $1 AND (session_id ="
                        " ANY($2::uuid[]) OR from_number = $3 OR to_number = $3)",
                        org_id, ids, user_id)
        sessions = await c.execute(
            "DELETE FROM sessions WHERE org_id = $1 AND id = ANY($2::uuid[])", org_id, ids)
    return {"episodes": int(episodes.split()[-1]), "facts": int(facts.split()[-1]),
            "sessions": int(sessions.split()[-1])}


async def prune_expired_memory(conn: Conn) -> int:
    """Delete every organization's remembered turns and facts older than its retention period
    (`settings.memory_retention_days`; none: kept); returns how many rows went."""
    return int(await conn.fetchval("SELECT aico_prune_expired_memory()"))


async def get_memory_retention(conn: Conn, *, org_id: UUID) -> int | None:
    async with org_transaction(conn, org_id) as c:
        days = await c.fetchval(
            "SELECT settings->>'memory_retention_days' FROM organizations WHERE id = $1", org_id)
    return int(days) if days is not None else None


async def set_memory_retention(conn: Conn, *, org_id: UUID, days: int | None) -> None:
    async with org_transaction(conn, org_id) as c:
        if days is None:
            await c.execute("UPDATE organizations SET settings = settings - 'memory_retention_days'"
                            " WHERE id = $1", org_id)
        else:
            await c.execute(
                "UPDATE organizations SET settings = jsonb_set(settings,"
                " '{memory_retention_days}', to_jsonb($2::int)) WHERE id = $1", org_id, days)
