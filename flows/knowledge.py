"""Knowledge bases: turning an upload into text, cutting it into chunks along its structure,
embedding each distinct chunk once, and hybrid search.

    text, kind = document_text(filename, content_type, data)       # ValidationFailed: 422
    doc = await add_document(pool, org_id=org, kb_id=kb, title=..., text=text, ...)
    schedule_ingestion(pool, org_id=org, kb_id=kb, document_id=doc["id"], settings=settings)
    hits = await search_knowledge(pool, org_id=org, kb_ids=[kb], query="...", top_k=4)

Ingestion runs off the request (a task on the serving loop) and records `processing` with its
progress, then `ready` with the chunk count, or `failed` with the reason. Embeddings come from
the session service's provider opening (`flows.sessions.open_provider`, the `minilm` default).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from uuid import UUID

import asyncpg

from aico.errors import NotFound, ValidationFailed
from aico.settings import Settings
from db import knowledge_bases as kb_db

log = logging.getLogger("aico.flows.knowledge")

# A chunk holds about this many characters (MiniLM reads 256 word pieces: ≈1,000 characters);
# consecutive chunks of a section share their boundary sentence.
CHUNK_CHARS = 700
MAX_DOCUMENT_CHARS = 2_000_000
EMBED_BATCH = 32

TEXT_TYPES = {"text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown",
              "text/html": "html", "application/pdf": "pdf",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx"}
SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
            ".htm": "html", ".pdf": "pdf", ".docx": "docx"}


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.heading}\n{self.text}".encode()).hexdigest()


# --- text out of an upload ------------------------------------------------------------------

def document_kind(filename: str, content_type: str) -> str:
    """text, markdown, html, pdf or docx; ValidationFailed (422) names what is accepted."""
    kind = TEXT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if kind is None or kind == "text":
        by_suffix = SUFFIXES.get(("." + filename.rsplit(".", 1)[-1].lower())
                                 if "." in filename else "")
        kind = by_suffix or kind
    if kind is None:
        raise ValidationFailed(
            f"file: unsupported type {content_type!r} ({filename!r}); upload text, Markdown,"
            " HTML, PDF or DOCX", details=[{"field": "file", "message": "unsupported type"}])
    return kind


def document_text(filename: str, content_type: str, data: bytes) -> tuple[str, str]:
    """(the upload's text, its kind); ValidationFailed (422) for a file that cannot be read."""
    kind = document_kind(filename, content_type)
    try:
        if kind in ("text", "markdown", "html"):
            text = data.decode("utf-8")
            if kind == "html":
                text = _html_text(text)
        elif kind == "pdf":
            from pypdf import PdfReader

            reader = PdfReader(io.BytesIO(data))
            text = "\n\n".join((page.extract_text() or "") for page in reader.pages)
        else:
            import docx

            paragraphs = docx.Document(io.BytesIO(data)).paragraphs
            text = "\n\n".join(("# " + p.text) if p.style is not None and p.style.name
                               and p.style.name.startswith("Heading") else p.text
                               for p in paragraphs)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the upload's fault
        raise ValidationFailed(f"file: could not read the {kind} upload {filename!r}: {exc}",
                               details=[{"field": "file", "message": str(exc)[:200]}]) from None
    return check_text(text, field="file"), kind


def check_text(text: str, *, field: str) -> str:
    if "\x00" in text:
        raise ValidationFailed(f"{field}: the text contains NUL bytes",
                               details=[{"field": field, "message": "NUL bytes"}])
    if not text.strip():
        raise ValidationFailed(f"{field}: the document has no text",
                               details=[{"field": field, "message": "empty"}])
    if len(text) > MAX_DOCUMENT_CHARS:
        raise ValidationFailed(f"{field}: more than {MAX_DOCUMENT_CHARS} characters",
                               details=[{"field": field, "message": "too long"}])
    return text


class _HTMLText(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "section", "article"})
    _HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self._HEADINGS:
            self.parts.append("\n\n# ")
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self._HEADINGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    return "".join(parser.parts)


# --- chunking -------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def chunk_text(text: str, *, max_chars: int = CHUNK_CHARS) -> list[Chunk]:
    """Chunks that follow the document's structure: a Markdown heading starts a section (and
    names its chunks), paragraphs are packed whole while they fit, a long paragraph is cut
    between sentences; consecutive chunks of a section overlap by one sentence."""
    chunks: list[Chunk] = []
    for heading, paragraphs in _sections(text):
        pieces: list[str] = []
        for paragraph in paragraphs:
            if len(paragraph) <= max_chars:
                pieces.append(paragraph)
            else:
                pieces.extend(_SENTENCE_END.split(paragraph))
        current: list[str] = []
        for piece in pieces:
            piece = piece[:max_chars * 2]  # a "sentence" with no end stays bounded
            if current and len(" ".join(current)) + len(piece) + 1 > max_chars:
                chunks.append(Chunk(len(chunks), heading, "\n".join(current)))
                tail = _SENTENCE_END.split(current[-1])[-1]
                current = [tail] if len(tail) + len(piece) + 1 <= max_chars else []
            current.append(piece)
        if current:
            chunks.append(Chunk(len(chunks), heading, "\n".join(current)))
    return chunks


def _sections(text: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    heading, block, paragraphs = "", [], []  # type: ignore[var-annotated]
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _HEADING.match(line.strip())
        if match or not line.strip():
            if block:
                paragraphs.append(" ".join(block))
                block = []
            if match:
                if paragraphs:
                    sections.append((heading, paragraphs))
                heading, paragraphs = match.group(2).strip(), []
            continue
        block.append(line.strip())
    if block:
        paragraphs.append(" ".join(block))
    if paragraphs:
        sections.append((heading, paragraphs))
    return sections


# --- documents and ingestion ----------------------------------------------------------------

async def add_document(pool: asyncpg.Pool, *, org_id: UUID, kb_id: UUID, title: str, text: str,
                       content_type: str) -> asyncpg.Record:
    """Store a queued document in the knowledge base (NotFound: not this organization's)."""
    if await kb_db.get_knowledge_base(pool, org_id=org_id, kb_id=kb_id) is None:
        raise NotFound(f"knowledge base {kb_id} not found")
    return await kb_db.insert_document(
        pool, org_id=org_id, kb_id=kb_id, title=title, content_type=content_type, text=text,
        content_sha256=hashlib.sha256(text.encode()).hexdigest())


_ingestions: set[asyncio.Task[None]] = set()
# An ingestion records progress at least every batch (seconds); one silent for this long ran in
# a process that is gone (a replaced replica), and the next status read starts it again.
STALLED_AFTER_S = 120.0


async def resume_if_stalled(pool: asyncpg.Pool, document: Any, *, org_id: UUID,
                            settings: Settings,
                            stalled_after_s: float = STALLED_AFTER_S) -> bool:
    """Start the document's ingestion again when it stalled (see STALLED_AFTER_S)."""
    if document["status"] not in ("queued", "processing"):
        return False
    if not await kb_db.claim_stalled_document(pool, org_id=org_id, document_id=document["id"],
                                              stalled_after_s=stalled_after_s):
        return False
    log.warning("document %s: ingestion stalled; starting it again", document["id"])
    schedule_ingestion(pool, org_id=org_id, kb_id=document["kb_id"], document_id=document["id"],
                       settings=settings)
    return True


def schedule_ingestion(pool: asyncpg.Pool, *, org_id: UUID, kb_id: UUID, document_id: UUID,
                       settings: Settings) -> asyncio.Task[None]:
    """Ingest the document on this loop, off the request that stored it."""
    task = asyncio.create_task(ingest_document(pool, org_id=org_id, kb_id=kb_id,
                                               document_id=document_id, settings=settings))
    _ingestions.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(_ingestions.discard)
    return task


async def open_embeddings(pool: asyncpg.Pool, *, org_id: UUID, settings: Settings) -> Any:
    """The organization's embeddings provider (the server default: `minilm`, offline)."""
    from flows.sessions import open_provider

    return await open_provider("embeddings", pool, org_id=org_id, pinned=None,
                               settings=settings)


async def ingest_document(pool: asyncpg.Pool, *, org_id: UUID, kb_id: UUID, document_id: UUID,
                          settings: Settings, embeddings: Any = None) -> None:
    """Chunk, embed (each distinct chunk text once per organization) and index a document."""
    try:
        text = await kb_db.get_document_text(pool, org_id=org_id, document_id=document_id)
        if text is None or not await kb_db.set_document_status(
                pool, org_id=org_id, document_id=document_id, status="processing", progress=0):
            return  # deleted before it was processed
        chunks = await asyncio.to_thread(chunk_text, text)
        hashes = [c.sha256 for c in chunks]
        embeddings = embeddings or await open_embeddings(pool, org_id=org_id,
                                                         settings=settings)
        model = embedding_model_key(embeddings)
        await ensure_current_embeddings(pool, org_id=org_id, embeddings=embeddings)
        vectors: dict[str, Any] = await kb_db.known_embeddings(pool, org_id=org_id,
                                                               hashes=hashes, model=model)
        todo = [c for c in {c.sha256: c for c in chunks}.values() if c.sha256 not in vectors]
        for i in range(0, len(todo), EMBED_BATCH):
            batch = todo[i:i + EMBED_BATCH]
            found = await embeddings.embed([_embedded_text(c) for c in batch])
            vectors.update({c.sha256: v for c, v in zip(batch, found, strict=True)})
            if not await kb_db.set_document_status(
                    pool, org_id=org_id, document_id=document_id, status="processing",
                    progress=round(min(0.99, (i + len(batch)) / len(todo)), 3)):
                return
        await kb_db.store_chunks(
            pool, org_id=org_id, kb_id=kb_id, document_id=document_id,
            chunks=[(c.position, c.heading, c.text, c.sha256, vectors[c.sha256])
                    for c in chunks], model=model)
    except asyncpg.ForeignKeyViolationError:
        return  # deleted while it was processed: nothing to record
    except Exception as exc:
        log.exception("document %s: ingestion failed", document_id)
        await kb_db.set_document_status(pool, org_id=org_id, document_id=document_id,
                                        status="failed", progress=0,
                                        error=f"{type(exc).__name__}: {exc}"[:500])


def _embedded_text(chunk: Chunk) -> str:
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


# --- a change of embeddings model ---------------------------------------------------------

REEMBED_BATCH = 32
_reembedding: dict[UUID, asyncio.Task[None]] = {}
_resume_checked: dict[UUID, float] = {}
RESUME_CHECK_S = 60.0


def embedding_model_key(embeddings: Any) -> str:
    """What a stored vector records of the model that made it: `kind`, or `kind:model` when the
    provider names a model (the packaged MiniLM is plain `minilm`)."""
    model = getattr(getattr(embeddings, "config", None), "model", "") or ""
    return f"{embeddings.kind}:{model}" if model else str(embeddings.kind)


async def ensure_current_embeddings(pool: asyncpg.Pool, *, org_id: UUID,
                                    embeddings: Any) -> bool:
    """When the organization's embeddings model is not the one its knowledge bases were
    embedded with, retarget them and re-embed in the background (chunks and remembered turns);
    True when a re-embedding started here."""
    model = embedding_model_key(embeddings)
    running = _reembedding.get(org_id)
    if not await kb_db.retarget_knowledge_bases(pool, org_id=org_id, model=model):
        # Same model: only a job that died with its process (or failed) is left to resume,
        # looked for at most once a minute per organization.
        now = asyncio.get_running_loop().time()
        if (running is not None and not running.done()) or now < _resume_checked.get(
                org_id, -RESUME_CHECK_S) + RESUME_CHECK_S:
            return False
        _resume_checked[org_id] = now
        if not await kb_db.has_stale_embeddings(pool, org_id=org_id, model=model):
            return False
    elif running is not None and not running.done():
        running.cancel()  # it walks towards the previous model
    task = asyncio.create_task(_reembed_logged(pool, org_id, embeddings))
    _reembedding[org_id] = task
    task.add_done_callback(lambda t: _reembedding.pop(org_id, None)
                           if _reembedding.get(org_id) is t else None)
    return True


async def _reembed_logged(pool: asyncpg.Pool, org_id: UUID, embeddings: Any) -> None:
    try:
        await reembed_organization(pool, org_id=org_id, embeddings=embeddings)
    except asyncio.CancelledError:
        raise
    except Exception:  # the next search or ingestion of the organization starts it again
        log.exception("organization %s: re-embedding failed", org_id)


async def reembed_organization(pool: asyncpg.Pool, *, org_id: UUID, embeddings: Any) -> int:
    """Embed again, batch by batch, every chunk and remembered turn of the organization that
    another model made; returns how many. Safe to run twice or resume: it walks what is stale."""
    from db import memory_episodes as episodes_db

    model = embedding_model_key(embeddings)
    done = 0
    while rows := await kb_db.stale_chunks(pool, org_id=org_id, model=model,
                                           limit=REEMBED_BATCH):
        found = await embeddings.embed(
            [f"{r['heading']}\n{r['text']}" if r["heading"] else r["text"] for r in rows])
        await kb_db.set_chunk_embeddings(pool, org_id=org_id, model=model,
                                         vectors=[(r["id"], v) for r, v in zip(rows, found,
                                                                                strict=True)])
        done += len(rows)
    while rows := await episodes_db.stale_episodes(pool, org_id=org_id, model=model,
                                                   limit=REEMBED_BATCH):
        found = await embeddings.embed([r["text"] for r in rows])
        await episodes_db.set_episode_embeddings(
            pool, org_id=org_id, model=model,
            vectors=[(r["id"], v) for r, v in zip(rows, found, strict=True)])
        done += len(rows)
    return done


# --- search ---------------------------------------------------------------------------------

async def search_knowledge(pool: asyncpg.Pool, *, org_id: UUID, kb_ids: list[UUID], query: str,
                           top_k: int, settings: Settings, embeddings: Any = None,
                           mode: kb_db.SearchMode = "hybrid") -> list[dict[str, Any]]:
    """The best `top_k` chunks for `query` in the organization's knowledge bases, each with
    its text, score, document title and position. NotFound when a base is not the org's."""
    if await kb_db.count_knowledge_bases(pool, org_id=org_id, kb_ids=kb_ids) != len(set(kb_ids)):
        raise NotFound("knowledge base not found: "
                       + ", ".join(str(k) for k in kb_ids))
    embeddings = embeddings or await open_embeddings(pool, org_id=org_id, settings=settings)
    await ensure_current_embeddings(pool, org_id=org_id, embeddings=embeddings)
    [vector] = await embeddings.embed([query])
    rows = await kb_db.search_chunks(pool, org_id=org_id, kb_ids=kb_ids, embedding=vector,
                                     query=query, top_k=top_k, mode=mode)
    return [{"chunk_id": r["id"], "knowledge_base_id": str(r["kb_id"]),
             "document_id": str(r["document_id"]), "document_title": r["document_title"],
             "position": r["position"], "heading": r["heading"], "text": r["text"],
             "score": round(float(r["score"]), 6)} for r in rows]


def context_text(hits: list[dict[str, Any]]) -> str:
    """Retrieved chunks as an llm node reads them: numbered, each with its source to cite."""
    return "\n\n".join(
        f"[{i}] {h['document_title']}" + (f" — {h['heading']}" if h.get("heading") else "")
        + f"\n{h['text']}" for i, h in enumerate(hits, start=1))
