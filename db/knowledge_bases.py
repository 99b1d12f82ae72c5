"""The knowledge tables: `knowledge_bases`, `knowledge_documents` (text, status, progress) and
`knowledge_chunks` (text, embedding, full-text vector), and the hybrid search over chunks.

Every function runs inside `org_transaction`: row-level security holds each organization to
its own rows whatever the SQL says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg
import numpy as np

from db import reembedding
from db.pool import Conn, org_transaction, returned_row

SearchMode = Literal["hybrid", "vector", "text"]

# Reciprocal rank fusion's constant (Cormack et al.): damps the weight of the very first ranks.
RRF_K = 60

# A base's chunks, and how many of them carry its embeddings model (re-embedding progress).
_CHUNK_COUNTS = (
    "(SELECT count(*) FROM knowledge_chunks k WHERE k.kb_id = b.id) AS chunks,"
    " (SELECT count(*) FROM knowledge_chunks k WHERE k.kb_id = b.id"
    " AND k.embedding_model = b.embedding_kind) AS chunks_current")
_DOC_COLUMNS = ("id, kb_id, title, content_type, status, progress, error, chunk_count,"
                " created_at, updated_at")


async def insert_knowledge_base(conn: Conn, *, org_id: UUID, name: str,
                                description: str) -> asyncpg.Record:
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            "INSERT INTO knowledge_bases (org_id, name, description) VALUES ($1, $2, $3)"
            " RETURNING id, name, description, embedding_kind, created_at",
            org_id, name, description))


async def list_knowledge_bases(conn: Conn, *, org_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            "SELECT b.id, b.name, b.description, b.embedding_kind, b.created_at,"
            " (SELECT count(*) FROM knowledge_documents d WHERE d.kb_id = b.id) AS documents,"
            f" {_CHUNK_COUNTS} FROM knowledge_bases b WHERE b.org_id = $1"
            " ORDER BY b.created_at", org_id)


async def get_knowledge_base(conn: Conn, *, org_id: UUID, kb_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            "SELECT b.id, b.name, b.description, b.embedding_kind, b.created_at,"
            f" {_CHUNK_COUNTS} FROM knowledge_bases b WHERE b.org_id = $1 AND b.id = $2",
            org_id, kb_id)


async def count_knowledge_bases(conn: Conn, *, org_id: UUID, kb_ids: Sequence[UUID]) -> int:
    async with org_transaction(conn, org_id) as c:
        return int(await c.fetchval(
            "SELECT count(*) FROM knowledge_bases WHERE org_id = $1 AND id = ANY($2::uuid[])",
            org_id, list(kb_ids)))


async def delete_knowledge_base(conn: Conn, *, org_id: UUID, kb_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute("DELETE FROM knowledge_bases WHERE org_id = $1 AND id = $2",
                                 org_id, kb_id)
    return status.endswith(" 1")


async def insert_document(conn: Conn, *, org_id: UUID, kb_id: UUID, title: str,
                          content_type: str, text: str, content_sha256: str) -> asyncpg.Record:
    async with org_transaction(conn, org_id) as c:
        return returned_row(await c.fetchrow(
            "INSERT INTO knowledge_documents (org_id, kb_id, title, content_type, text,"
            f" content_sha256) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_DOC_COLUMNS}",
            org_id, kb_id, title, content_type, text, content_sha256))


async def get_document(conn: Conn, *, org_id: UUID, kb_id: UUID,
                       document_id: UUID) -> asyncpg.Record | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchrow(
            f"SELECT {_DOC_COLUMNS} FROM knowledge_documents"
            " WHERE org_id = $1 AND kb_id = $2 AND id = $3", org_id, kb_id, document_id)


async def get_document_text(conn: Conn, *, org_id: UUID, document_id: UUID) -> str | None:
    async with org_transaction(conn, org_id) as c:
        return await c.fetchval(
            "SELECT text FROM knowledge_documents WHERE org_id = $1 AND id = $2",
            org_id, document_id)


async def list_documents(conn: Conn, *, org_id: UUID, kb_id: UUID) -> list[asyncpg.Record]:
    async with org_transaction(conn, org_id) as c:
        return await c.fetch(
            f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE org_id = $1 AND kb_id = $2"
            " ORDER BY created_at", org_id, kb_id)


async def delete_document(conn: Conn, *, org_id: UUID, kb_id: UUID, document_id: UUID) -> bool:
    async with org_transaction(conn, org_id) as c:
        status = await c.execute(
            "DELETE FROM knowledge_documents WHERE org_id = $1 AND kb_id = $2 AND id = $3",
            org_id, kb_id, document_id)
    return status.endswith(" 1")


async def set_document_status(conn: Conn, *, org_id: UUID, document_id: UUID, status: str,
                              progress: float, error: str | None = None) -> bool:
    """False when the document is gone (deleted while it was processed)."""
    async with org_transaction(conn, org_id) as c:
        done = await c.execute(
            "UPDATE knowledge_documents SET status = $3, progress = $4, error = $5,"
            " updated_at = now() WHERE org_id = $1 AND id = $2",
            org_id, document_id, status, progress, error)
    return done.endswith(" 1")


async def known_embeddings(conn: Conn, *, org_id: UUID, hashes: Sequence[str],
                           model: str = "minilm") -> dict[str, np.ndarray]:
    """The stored vector of each chunk text hash the organization already embedded with
    `model`."""
    async with org_transaction(conn, org_id) as c:
        rows = await c.fetch(
            "SELECT DISTINCT ON (text_sha256) text_sha256, embedding FROM knowledge_chunks"
            " WHERE org_id = $1 AND text_sha256 = ANY($2::text[]) AND embedding_model = $3",
            org_id, list(hashes), model)
    return {r["text_sha256"]: r["embedding"] for r in rows}


async def store_chunks(conn: Conn, *, org_id: UUID, kb_id: UUID, document_id: UUID,
                       chunks: Sequence[tuple[int, str, str, str, Any]],
                       model: str = "minilm") -> None:
    """Make `chunks` ((position, heading, text, text_sha256, embedding) rows) the document's
    chunks and mark it ready, in one transaction: an ingestion run again after a crash
    replaces what an earlier run left rather than adding to it."""
    async with org_transaction(conn, org_id) as c:
        await c.execute("DELETE FROM knowledge_chunks WHERE org_id = $1 AND document_id = $2",
                        org_id, document_id)
        await c.executemany(
            "INSERT INTO knowledge_chunks (org_id, kb_id, document_id, position, heading, text,"
            " text_sha256, embedding, embedding_model)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [(org_id, kb_id, document_id, *row, model) for row in chunks])
        await c.execute(
            "UPDATE knowledge_documents SET status = 'ready', progress = 1, error = NULL,"
            " chunk_count = $3, updated_at = now() WHERE org_id = $1 AND id = $2",
            org_id, document_id, len(chunks))


async def retarget_knowledge_bases(conn: Conn, *, org_id: UUID, model: str) -> int:
    """Make `model` the one every knowledge base of the organization should be embedded with;
    how many bases changed (their chunks are then re-embedded)."""
    async with org_transaction(conn, org_id) as c:
        done = await c.execute("UPDATE knowledge_bases SET embedding_kind = $2"
                               " WHERE org_id = $1 AND embedding_kind <> $2", org_id, model)
    return int(done.split()[-1])


async def has_stale_embeddings(conn: Conn, *, org_id: UUID, model: str) -> bool:
    """Whether any chunk or remembered turn of the organization was embedded with another
    model than `model` (a re-embedding left unfinished)."""
    async with org_transaction(conn, org_id) as c:
        return bool(await c.fetchval(
            "SELECT EXISTS (SELECT 1 FROM knowledge_chunks WHERE org_id = $1"
            " AND embedding_model <> $2) OR EXISTS (SELECT 1 FROM memory_episodes"
            " WHERE org_id = $1 AND embedding_model <> $2)", org_id, model))


async def stale_chunks(conn: Conn, *, org_id: UUID, model: str,
                       limit: int) -> list[asyncpg.Record]:
    """Up to `limit` of the organization's chunks embedded with another model than `model`."""
    return await reembedding.stale_rows(conn, "knowledge_chunks", org_id=org_id, model=model,
                                        limit=limit)


async def set_chunk_embeddings(conn: Conn, *, org_id: UUID, model: str,
                               vectors: Sequence[tuple[int, Any]]) -> None:
    await reembedding.set_embeddings(conn, "knowledge_chunks", org_id=org_id, model=model,
                                     vectors=vectors)


async def claim_stalled_document(conn: Conn, *, org_id: UUID, document_id: UUID,
                                 stalled_after_s: float) -> bool:
    """True (and the document queued afresh) when its ingestion has shown no progress for
    `stalled_after_s`: the process that ran it is gone. One caller wins the claim."""
    async with org_transaction(conn, org_id) as c:
        row = await c.fetchval(
            "UPDATE knowledge_documents SET status = 'queued', progress = 0, updated_at = now()"
            " WHERE org_id = $1 AND id = $2 AND status IN ('queued', 'processing')"
            " AND updated_at < now() - make_interval(secs => $3) RETURNING id",
            org_id, document_id, stalled_after_s)
    return row is not None


def _search_sql(mode: SearchMode) -> str:
    vector = (
        "v AS (SELECT id, row_number() OVER (ORDER BY dist) AS r FROM ("
        "  SELECT id, embedding <=> $3 AS dist FROM knowledge_chunks"
        "   WHERE org_id = $1 AND kb_id = ANY($2::uuid[]) ORDER BY dist LIMIT $5) nearest)")
    # Any word of the question may match (OR): a question rarely repeats all of a chunk's words.
    text = (
        "t AS (SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM ("
        "  SELECT id, ts_rank_cd(tsv, q) AS rank FROM knowledge_chunks,"
        "   to_tsquery('english', replace(plainto_tsquery('english', $4)::text, '&', '|')) q"
        "   WHERE org_id = $1 AND kb_id = ANY($2::uuid[]) AND tsv @@ q"
        "   ORDER BY rank DESC LIMIT $5) matched)")
    names = {"hybrid": ("v", "t"), "vector": ("v",), "text": ("t",)}[mode]
    ranked = " UNION ALL ".join(f"SELECT id, r FROM {name}" for name in names)
    # Every parameter is typed here, whichever ranking the mode leaves out.
    typed = "params AS (SELECT $3::vector AS e, $4::text AS q, $5::int AS n, $6::int AS k)"
    return (
        "WITH " + ", ".join([typed, *({"v": vector, "t": text}[n] for n in names)]) + ","
        f" fused AS (SELECT id, sum(1.0 / ({RRF_K} + r)) AS score FROM ({ranked}) ranks"
        "  GROUP BY id ORDER BY score DESC LIMIT $6)"
        " SELECT c.id, c.kb_id, c.document_id, c.position, c.heading, c.text, f.score,"
        " d.title AS document_title FROM fused f JOIN knowledge_chunks c ON c.id = f.id"
        " JOIN knowledge_documents d ON d.id = c.document_id ORDER BY f.score DESC, c.id")


async def search_chunks(conn: Conn, *, org_id: UUID, kb_ids: Sequence[UUID], embedding: Any,
                        query: str, top_k: int, mode: SearchMode = "hybrid",
                        candidates: int | None = None) -> list[asyncpg.Record]:
    """The `top_k` chunks of the knowledge bases for `query`: the nearest by embedding and the
    best full-text matches (each `candidates` deep, by default twice `top_k` and at least 10),
    fused by reciprocal rank. Deeper lists let weak matches of both kinds outrank a strong
    match of one (on the labelled set: hybrid recall@5 0.982 at depth 20-40, 1.000 at 5-10)."""
    depth = candidates if candidates is not None else max(10, 2 * top_k)
    async with org_transaction(conn, org_id) as c:
        # The organization and knowledge-base filter runs after the HNSW scan: let pgvector
        # keep scanning until enough rows pass it, rather than return too few.
        await c.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        return await c.fetch(_search_sql(mode), org_id, list(kb_ids), embedding, query,
                             max(depth, top_k), top_k)
