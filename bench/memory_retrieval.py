"""Knowledge retrieval: recall@5 of vector-only, full-text-only and hybrid search on the
labelled set (bench/memory_retrieval_set.py), ingestion chunks/s, and search latency p50/p95 with
an organization filter once the table holds `--scale` chunks of other organizations.

    .venv/bin/python bench/memory_retrieval.py [--scale 100000]

Runs on its own embedded PostgreSQL and the packaged MiniLM (in this process). Prints figures;
asserts nothing (tests/memory/test_retrieval_quality.py holds hybrid to the better of the two).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # after the packages: bench/providers.py

import asyncpg
import numpy as np
from memory_retrieval_set import DOCUMENTS, QUESTIONS

from aico.settings import Settings
from db import knowledge_bases as kb_db
from db.embedded import start_embedded_postgres
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_pool
from flows import knowledge

MODES: tuple[kb_db.SearchMode, ...] = ("vector", "text", "hybrid")


async def load_set(pool: asyncpg.Pool, *, org_id: UUID, settings: Settings,
                   embeddings: Any) -> tuple[UUID, int, float]:
    """(knowledge base id, chunks, seconds) after ingesting the labelled set's documents."""
    kb = await kb_db.insert_knowledge_base(pool, org_id=org_id, name="pellhaven",
                                           description="labelled retrieval set")
    started = time.perf_counter()
    chunks = 0
    for title, text in DOCUMENTS.items():
        doc = await knowledge.add_document(pool, org_id=org_id, kb_id=kb["id"], title=title,
                                           text=text, content_type="markdown")
        await knowledge.ingest_document(pool, org_id=org_id, kb_id=kb["id"],
                                        document_id=doc["id"], settings=settings,
                                        embeddings=embeddings)
        row = await kb_db.get_document(pool, org_id=org_id, kb_id=kb["id"],
                                       document_id=doc["id"])
        assert row is not None and row["status"] == "ready", dict(row or {})
        chunks += row["chunk_count"]
    return kb["id"], chunks, time.perf_counter() - started


async def recall_at(pool: asyncpg.Pool, *, org_id: UUID, kb_id: UUID, settings: Settings,
                    embeddings: Any, k: int = 5) -> dict[str, float]:
    """Per mode, the share of questions whose answer phrase is in one of the top `k` chunks."""
    hits = dict.fromkeys(MODES, 0)
    for question, phrase in QUESTIONS:
        for mode in MODES:
            found = await knowledge.search_knowledge(
                pool, org_id=org_id, kb_ids=[kb_id], query=question, top_k=k,
                settings=settings, embeddings=embeddings, mode=mode)
            hits[mode] += any(phrase in h["text"] for h in found)
    return {mode: hits[mode] / len(QUESTIONS) for mode in MODES}


async def fill_other_orgs(pool: asyncpg.Pool, rows: int) -> None:
    """`rows` chunks with random unit vectors spread over 20 other organizations."""
    rng = np.random.default_rng(7)
    for n in range(20):
        org = await insert_organization(pool, slug=f"filler-{n}", name=f"filler {n}")
        kb = await kb_db.insert_knowledge_base(pool, org_id=org["id"], name="f", description="")
        doc = await kb_db.insert_document(pool, org_id=org["id"], kb_id=kb["id"], title="f",
                                          content_type="text", text="f", content_sha256="f")
        vectors = rng.standard_normal((rows // 20, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = [(org["id"], kb["id"], doc["id"], i, "", f"filler chunk {i} about harbour",
                    f"f{n}-{i}", vectors[i]) for i in range(len(vectors))]
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "knowledge_chunks", records=records,
                columns=["org_id", "kb_id", "document_id", "position", "heading", "text",
                         "text_sha256", "embedding"])
    await pool.execute("ANALYZE knowledge_chunks")


async def search_latency(pool: asyncpg.Pool, *, org_id: UUID, kb_id: UUID, settings: Settings,
                         embeddings: Any) -> tuple[float, float]:
    """p50/p95 ms of the hybrid SQL alone (the query embedded beforehand), over the set."""
    vectors = await embeddings.embed([q for q, _ in QUESTIONS])
    times = []
    for _ in range(3):
        for (question, _), vector in zip(QUESTIONS, vectors, strict=True):
            started = time.perf_counter()
            await kb_db.search_chunks(pool, org_id=org_id, kb_ids=[kb_id], embedding=vector,
                                      query=question, top_k=5)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=0,
                        help="chunks of other organizations to add before timing search")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aico-bench-") as home:
        Path(home).chmod(0o755)
        pg = start_embedded_postgres(Path(home) / "pg", delete_on_stop=True)
        try:
            await prepare_database(pg.dsn)
            pool = await create_pool(pg.dsn, min_size=1, max_size=4)
            settings = Settings(home=Path(home), database_url=pg.dsn)
            org = await insert_organization(pool, slug="bench", name="bench")
            embeddings = await knowledge.open_embeddings(pool, org_id=org["id"],
                                                         settings=settings)
            await embeddings.embed(["warm up"])
            kb_id, chunks, seconds = await load_set(pool, org_id=org["id"], settings=settings,
                                                    embeddings=embeddings)
            print(f"ingested {len(DOCUMENTS)} documents, {chunks} chunks in {seconds:.2f} s"
                  f" = {chunks / seconds:.1f} chunks/s (chunk, embed with MiniLM, store)")
            recall = await recall_at(pool, org_id=org["id"], kb_id=kb_id, settings=settings,
                                     embeddings=embeddings)
            print(f"recall@5 over {len(QUESTIONS)} questions: "
                  + ", ".join(f"{m} {recall[m]:.3f}" for m in MODES))
            p50, p95 = await search_latency(pool, org_id=org["id"], kb_id=kb_id,
                                            settings=settings, embeddings=embeddings)
            print(f"hybrid search SQL, {chunks} chunks in the table: p50 {p50:.2f} ms,"
                  f" p95 {p95:.2f} ms")
            if args.scale:
                started = time.perf_counter()
                await fill_other_orgs(pool, args.scale)
                print(f"added {args.scale} chunks of 20 other organizations in"
                      f" {time.perf_counter() - started:.1f} s (COPY + HNSW/GIN upkeep)")
                p50, p95 = await search_latency(pool, org_id=org["id"], kb_id=kb_id,
                                                settings=settings, embeddings=embeddings)
                recall = await recall_at(pool, org_id=org["id"], kb_id=kb_id,
                                         settings=settings, embeddings=embeddings)
                print(f"hybrid search SQL with the organization filter, {args.scale + chunks}"
                      f" chunks: p50 {p50:.2f} ms, p95 {p95:.2f} ms; recall@5 then: "
                      + ", ".join(f"{m} {recall[m]:.3f}" for m in MODES))
            print(f"load average: {os.getloadavg()[0]:.1f}")
            await pool.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
