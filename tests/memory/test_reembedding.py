"""A change of the organization's embeddings model re-embeds, in the background, the knowledge
base chunks and remembered turns that the old model made; the knowledge base shows how far it
got (`chunks_current` of `chunks`), and its search keeps working. The "other model" is the same
packaged MiniLM named by its folder (a different model key, so the job really walks every row);
the way back is set off by an ordinary search, with the organization's default model."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from flow_fakes import publish
from test_episodic_memory import ask, remembered, remembering_flow
from test_knowledge_api import HANDBOOK, make_kb, wait_ready

pytestmark = pytest.mark.slow


async def kb_when(api: httpx.AsyncClient, kb: str, model: str) -> list[dict[str, Any]]:
    """The knowledge base as seen while polling, until all its chunks carry `model`."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        r = await api.get(f"/v1/knowledge-bases/{kb}")
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if seen[-1]["embedding_kind"] == model and seen[-1]["chunks_current"] == seen[-1]["chunks"]:
            return seen
        assert asyncio.get_running_loop().time() < deadline, seen[-1]
        await asyncio.sleep(0.05)


async def all_rows_carry(pool: asyncpg.Pool, org_id: Any, model: str) -> None:
    """Wait until every chunk and remembered turn of the organization carries `model`."""
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        models = await pool.fetch(
            "SELECT embedding_model FROM knowledge_chunks WHERE org_id = $1 UNION"
            " SELECT embedding_model FROM memory_episodes WHERE org_id = $1", org_id)
        if {r["embedding_model"] for r in models} == {model}:
            return
        assert asyncio.get_running_loop().time() < deadline, models
        await asyncio.sleep(0.05)


async def test_a_new_embeddings_model_re_embeds_chunks_and_turns_in_the_background(
        make_org, scripted_llm, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch):
    from flows import knowledge
    from providers import runtime
    from providers.minilm_embeddings import packaged_model_dir

    org = await make_org()
    kb = await make_kb(org.client)
    doc = (await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                 json={"title": "Lighthouse", "text": HANDBOOK})).json()
    assert (await wait_ready(org.client, kb, doc["id"]))[-1]["status"] == "ready"
    flow = await publish(org.client, remembering_flow())
    await ask(org.client, flow, {"id": "ada"}, "My dog is called Biscuit.", scripted_llm)
    await remembered(org.client, "ada", 1)
    before = (await org.client.get(f"/v1/knowledge-bases/{kb}")).json()
    assert before["embedding_kind"] == "minilm"
    assert before["chunks"] > 0 and before["chunks_current"] == before["chunks"]

    folder = str(packaged_model_dir())
    other = await runtime.open_embeddings({"kind": "minilm", "model": folder}, secrets={})
    assert await knowledge.ensure_current_embeddings(pool, org_id=org.id, embeddings=other)
    seen = await kb_when(org.client, kb, f"minilm:{folder}")
    assert seen[-1]["chunks"] == before["chunks"]
    await all_rows_carry(pool, org.id, f"minilm:{folder}")
    # Already current: nothing starts again.
    assert not await knowledge.ensure_current_embeddings(pool, org_id=org.id, embeddings=other)

    # The organization's own model is the packaged default: a search notices and turns back.
    r = await org.client.post(f"/v1/knowledge-bases/{kb}/search",
                              json={"query": "When is the lighthouse closed?", "top_k": 3})
    assert r.status_code == 200, r.text
    assert any("closed every Tuesday" in h["text"] for h in r.json()["items"])
    await kb_when(org.client, kb, "minilm")
    await all_rows_carry(pool, org.id, "minilm")
    # Another organization's rows were never touched.
    assert await pool.fetchval("SELECT count(*) FROM knowledge_chunks WHERE org_id <> $1"
                               " AND embedding_model <> 'minilm'", org.id) == 0

    # A re-embedding that died with its process (rows left on another model) is resumed by a
    # later search (looked for at most once a minute; at once here).
    monkeypatch.setattr(knowledge, "RESUME_CHECK_S", 0.0)
    await pool.execute("UPDATE knowledge_chunks SET embedding_model = 'gone' WHERE org_id = $1",
                       org.id)
    deadline = asyncio.get_running_loop().time() + 120
    while await pool.fetchval("SELECT count(*) FROM knowledge_chunks WHERE org_id = $1"
                              " AND embedding_model <> 'minilm'", org.id):
        r = await org.client.post(f"/v1/knowledge-bases/{kb}/search",
                                  json={"query": "lighthouse", "top_k": 1})
        assert r.status_code == 200, r.text
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
