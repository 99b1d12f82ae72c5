"""Retrieval quality on the labelled set (bench/memory_retrieval_set.py: 10 documents written
for it, 55 questions): hybrid search finds the answer's chunk in its top 5 at least as often as
the better of vector-only and full-text-only search. The bench prints the same figures."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

from aico.settings import Settings
from db.organizations import insert_organization
from flows import knowledge

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from memory_retrieval import QUESTIONS, load_set, recall_at

pytestmark = pytest.mark.slow


async def test_hybrid_recall_at_5_is_at_least_the_better_of_vector_and_text(
        pool: asyncpg.Pool, settings: Settings):
    org = await insert_organization(pool, slug="retrieval-set", name="retrieval set")
    embeddings = await knowledge.open_embeddings(pool, org_id=org["id"], settings=settings)
    kb_id, chunks, _ = await load_set(pool, org_id=org["id"], settings=settings,
                                      embeddings=embeddings)
    assert chunks >= 50 and len(QUESTIONS) >= 50
    recall = await recall_at(pool, org_id=org["id"], kb_id=kb_id, settings=settings,
                             embeddings=embeddings)
    print("recall@5", recall)
    assert recall["hybrid"] >= max(recall["vector"], recall["text"]), recall
    assert recall["text"] < 1.0  # the set does not favour full text: paraphrases miss it
