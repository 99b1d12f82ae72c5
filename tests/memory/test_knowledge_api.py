"""Knowledge bases through the HTTP API, with the real embedded PostgreSQL and the real MiniLM:
an admin creates a base, uploads documents (JSON and multipart Markdown/HTML/PDF/DOCX), watches
them become ready, and searches them; another organization sees none of it; bad uploads are a
clear 4xx and store nothing."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.slow

HANDBOOK = """# Harbor Lighthouse

The Harbor Lighthouse was built in 1874 from granite quarried on Pell Island.
Its lamp is visible for twenty-two nautical miles on a clear night.

# Visiting hours

The lighthouse museum opens at nine in the morning and closes at five in the afternoon.
It is closed every Tuesday for cleaning. Tickets cost seven euros for adults.

# Keepers

The last resident keeper, Marguerite Olsen, retired in 1961 after thirty years of service.
"""


async def wait_ready(api: httpx.AsyncClient, kb_id: str, doc_id: str,
                     timeout_s: float = 120) -> list[dict[str, Any]]:
    """The document's statuses as seen while polling, until it is ready or failed."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        r = await api.get(f"/v1/knowledge-bases/{kb_id}/documents/{doc_id}")
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if r.json()["status"] in ("ready", "failed"):
            return seen
        assert asyncio.get_running_loop().time() < deadline, seen[-1]
        await asyncio.sleep(0.05)


async def make_kb(api: httpx.AsyncClient, name: str = "handbook") -> str:
    r = await api.post("/v1/knowledge-bases", json={"name": name, "description": "test"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_upload_then_search_finds_the_chunk_with_the_answer(make_org, pool: asyncpg.Pool):
    org = await make_org()
    kb = await make_kb(org.client)
    r = await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                              json={"title": "Lighthouse handbook", "text": HANDBOOK})
    assert r.status_code == 202, r.text
    doc = r.json()
    assert doc["status"] == "queued"
    seen = await wait_ready(org.client, kb, doc["id"])
    assert seen[-1]["status"] == "ready", seen[-1]
    assert seen[-1]["chunk_count"] == 3 and seen[-1]["progress"] == 1

    r = await org.client.post(f"/v1/knowledge-bases/{kb}/search",
                              json={"query": "Which day is the museum closed?", "top_k": 2})
    assert r.status_code == 200, r.text
    top = r.json()["items"][0]
    assert "closed every Tuesday" in top["text"]
    assert top["document_title"] == "Lighthouse handbook"
    assert top["heading"] == "Visiting hours" and top["position"] == 1 and top["score"] > 0

    stored = await pool.fetch("SELECT heading, vector_dims(embedding) AS dims FROM knowledge_chunks"
                              " WHERE document_id = $1 ORDER BY position", doc["id"])
    assert [s["heading"] for s in stored] == ["Harbor Lighthouse", "Visiting hours", "Keepers"]
    assert all(s["dims"] == 384 for s in stored)


async def test_identical_content_is_not_embedded_twice(make_org, pool: asyncpg.Pool,
                                                       monkeypatch: pytest.MonkeyPatch):
    from flows import knowledge

    org = await make_org()
    kb = await make_kb(org.client)
    embedded: list[str] = []
    real = knowledge.open_embeddings

    async def counting(*args: Any, **kwargs: Any) -> Any:
        provider = await real(*args, **kwargs)
        inner = provider.embed

        async def embed(texts: list[str]) -> list[list[float]]:
            embedded.extend(texts)
            return await inner(texts)

        provider.embed = embed
        return provider

    monkeypatch.setattr(knowledge, "open_embeddings", counting)
    ids = []
    for title in ("first copy", "second copy"):
        r = await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                  json={"title": title, "text": HANDBOOK})
        ids.append(r.json()["id"])
        assert (await wait_ready(org.client, kb, ids[-1]))[-1]["status"] == "ready"
    assert len(embedded) == 3  # the second copy's three chunks reuse the first's vectors
    counts = await pool.fetch("SELECT document_id, count(*) FROM knowledge_chunks"
                              " WHERE kb_id = $1 GROUP BY document_id", kb)
    assert sorted(c["count"] for c in counts) == [3, 3]


async def test_multipart_markdown_html_pdf_and_docx_end_ready(make_org):
    import docx

    org = await make_org()
    kb = await make_kb(org.client)
    word = docx.Document()
    word.add_heading("Parking", level=1)
    word.add_paragraph("Visitors park for free behind the ferry terminal.")
    docx_bytes = io.BytesIO()
    word.save(docx_bytes)
    pdf_bytes = _pdf_with_text("The fog horn sounds twice every minute in fog.")
    uploads = [
        ("handbook.md", "text/markdown", HANDBOOK.encode(), "Tuesday"),
        ("page.html", "text/html",
         b"<html><script>x()</script><h1>Shop</h1><p>The gift shop sells maps.</p></html>",
         "gift shop"),
        ("parking.docx", ("application/vnd.openxmlformats-officedocument.wordprocessingml"
         ".document"), docx_bytes.getvalue(), "ferry terminal"),
        ("fog.pdf", "application/pdf", pdf_bytes, "fog horn"),
    ]
    for name, ctype, data, phrase in uploads:
        r = await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                  files={"file": (name, data, ctype)})
        assert r.status_code == 202, (name, r.text)
        seen = await wait_ready(org.client, kb, r.json()["id"])
        assert seen[-1]["status"] == "ready", (name, seen[-1])
        assert seen[-1]["title"] == name
        r = await org.client.post(f"/v1/knowledge-bases/{kb}/search",
                                  json={"query": phrase, "top_k": 1})
        assert phrase in r.json()["items"][0]["text"], (name, r.json())


def _pdf_with_text(text: str) -> bytes:
    """A one-page PDF whose content stream draws `text` in Helvetica (extractable)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


async def test_another_organizations_knowledge_base_is_a_404(make_org, pool: asyncpg.Pool):
    owner, other = await make_org(), await make_org()
    kb = await make_kb(owner.client)
    r = await owner.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                json={"title": "secret", "text": HANDBOOK})
    doc = r.json()["id"]
    await wait_ready(owner.client, kb, doc)
    for method, path, body in (
        ("GET", f"/v1/knowledge-bases/{kb}", None),
        ("GET", f"/v1/knowledge-bases/{kb}/documents/{doc}", None),
        ("POST", f"/v1/knowledge-bases/{kb}/search", {"query": "lighthouse"}),
        ("POST", f"/v1/knowledge-bases/{kb}/documents", {"title": "x", "text": "planted"}),
        ("DELETE", f"/v1/knowledge-bases/{kb}/documents/{doc}", None),
        ("DELETE", f"/v1/knowledge-bases/{kb}", None),
    ):
        r = await other.client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
    assert (await other.client.get("/v1/knowledge-bases")).json()["items"] == []
    assert await pool.fetchval("SELECT count(*) FROM knowledge_documents WHERE kb_id = $1",
                               kb) == 1
    assert await pool.fetchval("SELECT count(*) FROM knowledge_bases WHERE id = $1", kb) == 1


async def test_malformed_and_oversized_uploads_are_refused_storing_nothing(
        make_org, pool: asyncpg.Pool):
    org = await make_org()
    kb = await make_kb(org.client)
    url = f"/v1/knowledge-bases/{kb}/documents"
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"json": {"title": "t"}}, 422, "text"),
        ({"json": {"title": "t", "text": "   "}}, 422, "text"),
        ({"files": {"file": ("x.pdf", b"%PDF-1.4 not really a pdf", "application/pdf")}},
         422, "file"),
        ({"files": {"file": ("x.docx", b"PK not a zip", ("application/vnd.openxmlformats-"
                                                       "officedocument.wordprocessingml.document"))}},
         422, "file"),
        ({"files": {"file": ("x.exe", b"MZ\x00\x01", "application/octet-stream")}}, 422,
         "file"),
        ({"files": {"file": ("x.txt", b"\xff\xfe\x00bad utf8", "text/plain")}}, 422, "file"),
        ({"files": {"notfile": ("x.txt", b"hello", "text/plain")}}, 422, "file"),
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 400, "JSON"),
        ({"json": {"title": "big", "text": "word " * 60_000}}, 413, None),
    ]
    for kwargs, status, named in cases:
        r = await org.client.post(url, **kwargs)
        assert r.status_code == status, (kwargs.keys(), r.status_code, r.text)
        if named:
            assert named in r.json()["message"], r.json()
    assert await pool.fetchval("SELECT count(*) FROM knowledge_documents WHERE kb_id = $1",
                               kb) == 0
    assert await pool.fetchval("SELECT count(*) FROM knowledge_chunks WHERE kb_id = $1", kb) == 0


async def test_deleting_a_document_removes_its_chunks(make_org, pool: asyncpg.Pool):
    org = await make_org()
    kb = await make_kb(org.client)
    doc = (await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                                 json={"title": "h", "text": HANDBOOK})).json()["id"]
    await wait_ready(org.client, kb, doc)
    assert (await org.client.delete(f"/v1/knowledge-bases/{kb}/documents/{doc}")
            ).status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM knowledge_chunks WHERE document_id = $1",
                               doc) == 0
    r = await org.client.post(f"/v1/knowledge-bases/{kb}/search", json={"query": "Tuesday"})
    assert r.json()["items"] == []


async def test_a_long_document_shows_its_progress_while_it_is_processed(
        make_org, monkeypatch: pytest.MonkeyPatch):
    """The upload answers 202 at once; while the second batch of chunks waits to be embedded,
    the status reads `processing` with the share done so far."""
    from flows import knowledge

    org = await make_org()
    kb = await make_kb(org.client)
    gate, batches = asyncio.Event(), []
    real = knowledge.open_embeddings

    async def gated(*args: Any, **kwargs: Any) -> Any:
        provider = await real(*args, **kwargs)
        inner = provider.embed

        async def embed(texts: list[str]) -> list[list[float]]:
            batches.append(len(texts))
            if len(batches) > 1:
                await gate.wait()
            return await inner(texts)

        provider.embed = embed
        return provider

    monkeypatch.setattr(knowledge, "open_embeddings", gated)
    text = "\n\n".join(f"# Room {i}\nRoom {i} of the museum shows exhibit number {i * 7}."
                       for i in range(48))
    r = await org.client.post(f"/v1/knowledge-bases/{kb}/documents",
                              json={"title": "rooms", "text": text})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    doc = r.json()["id"]
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        status = (await org.client.get(f"/v1/knowledge-bases/{kb}/documents/{doc}")).json()
        if status["status"] == "processing" and status["progress"] > 0:
            break
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.02)
    assert status["progress"] == pytest.approx(32 / 48, abs=0.01) and status["chunk_count"] == 0
    gate.set()
    seen = await wait_ready(org.client, kb, doc)
    assert seen[-1]["status"] == "ready" and seen[-1]["chunk_count"] == 48
    assert batches == [32, 16]


async def test_an_ingestion_whose_process_died_starts_again_when_its_status_is_read(
        make_org, pool: asyncpg.Pool):
    """A replica that died mid-ingestion left its document `processing` with a partial chunk
    and no progress for ten minutes: the next status read queues it again, and it ends ready
    with exactly its own chunks."""
    org = await make_org()
    kb = await make_kb(org.client)
    doc = await pool.fetchval(
        "INSERT INTO knowledge_documents (org_id, kb_id, title, content_type, text,"
        " content_sha256, status, progress, updated_at) VALUES ($1, $2, 'handbook', 'text',"
        " $3, 'x', 'processing', 0.3, now() - interval '10 minutes') RETURNING id",
        org.id, kb, HANDBOOK)
    await pool.execute(
        "INSERT INTO knowledge_chunks (org_id, kb_id, document_id, position, text, text_sha256,"
        " embedding) VALUES ($1, $2, $3, 0, 'left over', 'y', $4)", org.id, kb, doc,
        [0.05] * 384)

    first = (await org.client.get(f"/v1/knowledge-bases/{kb}/documents/{doc}")).json()
    assert first["status"] in ("queued", "processing", "ready") and first["progress"] != 0.3
    seen = await wait_ready(org.client, kb, str(doc))
    assert seen[-1]["status"] == "ready" and seen[-1]["chunk_count"] == 3
    texts = await pool.fetch("SELECT text FROM knowledge_chunks WHERE document_id = $1", doc)
    assert len(texts) == 3 and all("left over" not in t["text"] for t in texts)


async def test_a_document_in_progress_is_not_started_twice(make_org, pool: asyncpg.Pool):
    org = await make_org()
    kb = await make_kb(org.client)
    doc = await pool.fetchval(
        "INSERT INTO knowledge_documents (org_id, kb_id, title, content_type, text,"
        " content_sha256, status, progress) VALUES ($1, $2, 'h', 'text', $3, 'x',"
        " 'processing', 0.5) RETURNING id", org.id, kb, HANDBOOK)
    status = (await org.client.get(f"/v1/knowledge-bases/{kb}/documents/{doc}")).json()
    assert status["status"] == "processing" and status["progress"] == 0.5
    assert await pool.fetchval("SELECT count(*) FROM knowledge_chunks WHERE document_id = $1",
                               doc) == 0
