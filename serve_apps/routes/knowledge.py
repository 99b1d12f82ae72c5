"""Knowledge bases: create, list, delete; add documents (JSON text or a multipart upload of
text, Markdown, HTML, PDF or DOCX), processed off the request (202, then a status with its
progress); search (hybrid: vector and full text, fused by reciprocal rank).

Viewers read and search; editors add and delete documents; admins create and delete bases."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aico.errors import BadRequest, NotFound, ValidationFailed
from db import knowledge_bases as kb_db
from flows import knowledge
from flows.document import pydantic_error_details
from serve_apps.deps import AdminDep, EditorDep, PoolDep, SettingsDep, ViewerDep

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge"])


class KnowledgeBaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class DocumentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=50)


class KnowledgeBaseOut(BaseModel):
    id: UUID
    name: str
    description: str
    embedding_kind: str = Field(description="the embeddings model its chunks are (being) embedded with")
    created_at: datetime
    documents: int = 0
    chunks: int = 0
    chunks_current: int = Field(default=0, description="chunks embedded with `embedding_kind`:"
                                " below `chunks` while a change of model is re-embedded")


class DocumentOut(BaseModel):
    id: UUID
    knowledge_base_id: UUID
    title: str
    content_type: str
    status: str
    progress: float
    error: str | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime


def _document(row: Any) -> DocumentOut:
    return DocumentOut(id=row["id"], knowledge_base_id=row["kb_id"], title=row["title"],
                       content_type=row["content_type"], status=row["status"],
                       progress=row["progress"], error=row["error"],
                       chunk_count=row["chunk_count"], created_at=row["created_at"],
                       updated_at=row["updated_at"])


@router.post("", status_code=201)
async def create_knowledge_base(body: KnowledgeBaseCreate, principal: AdminDep,
                                pool: PoolDep) -> KnowledgeBaseOut:
    row = await kb_db.insert_knowledge_base(pool, org_id=principal.org_id, name=body.name,
                                            description=body.description)
    return KnowledgeBaseOut(**dict(row))


@router.get("")
async def list_knowledge_bases(principal: ViewerDep,
                               pool: PoolDep) -> dict[str, list[KnowledgeBaseOut]]:
    rows = await kb_db.list_knowledge_bases(pool, org_id=principal.org_id)
    return {"items": [KnowledgeBaseOut(**dict(r)) for r in rows]}


@router.get("/{kb_id}")
async def get_knowledge_base(kb_id: UUID, principal: ViewerDep,
                             pool: PoolDep) -> dict[str, Any]:
    row = await kb_db.get_knowledge_base(pool, org_id=principal.org_id, kb_id=kb_id)
    if row is None:
        raise NotFound(f"knowledge base {kb_id} not found")
    docs = await kb_db.list_documents(pool, org_id=principal.org_id, kb_id=kb_id)
    out = KnowledgeBaseOut(**dict(row), documents=len(docs)).model_dump(mode="json")
    out["items"] = [_document(d).model_dump(mode="json") for d in docs]
    return out


@router.delete("/{kb_id}", status_code=204)
async def delete_knowledge_base(kb_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    if not await kb_db.delete_knowledge_base(pool, org_id=principal.org_id, kb_id=kb_id):
        raise NotFound(f"knowledge base {kb_id} not found")
    return Response(status_code=204)


@router.post("/{kb_id}/documents", status_code=202)
async def add_document(kb_id: UUID, request: Request, principal: EditorDep, pool: PoolDep,
                       settings: SettingsDep) -> DocumentOut:
    """JSON `{"title", "text"}`, or multipart with a `file` part (and an optional `title`)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        title, text, kind = await _uploaded(request)
    elif content_type.startswith("application/json"):
        try:
            body = DocumentCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            details = pydantic_error_details(exc, None)
            named = "; ".join(f"{d['field']}: {d['message']}" for d in details)
            raise ValidationFailed(f"invalid document: {named}", details=details) from None
        title, text, kind = body.title, knowledge.check_text(body.text, field="text"), "text"
    else:
        raise BadRequest("send JSON {\"title\", \"text\"} or a multipart/form-data upload"
                         f" with a `file` part (got Content-Type {content_type!r})")
    row = await knowledge.add_document(pool, org_id=principal.org_id, kb_id=kb_id, title=title,
                                       text=text, content_type=kind)
    knowledge.schedule_ingestion(pool, org_id=principal.org_id, kb_id=kb_id,
                                 document_id=row["id"], settings=settings)
    return _document(row)


async def _uploaded(request: Request) -> tuple[str, str, str]:
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the caller's
        raise BadRequest(f"file: malformed multipart body: {exc}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ValidationFailed("file: a multipart upload needs a `file` part",
                               details=[{"field": "file", "message": "missing"}])
    data = await upload.read()
    filename = upload.filename or "upload"
    text, kind = knowledge.document_text(filename, upload.content_type or "", data)
    title = form.get("title")
    return (str(title) if isinstance(title, str) and title.strip() else filename)[:500], text, kind


@router.get("/{kb_id}/documents/{document_id}")
async def get_document(kb_id: UUID, document_id: UUID, principal: ViewerDep, pool: PoolDep,
                       settings: SettingsDep) -> DocumentOut:
    row = await kb_db.get_document(pool, org_id=principal.org_id, kb_id=kb_id,
                                   document_id=document_id)
    if row is None:
        raise NotFound(f"document {document_id} not found in knowledge base {kb_id}")
    # Whoever watches a document's progress also restarts it if its process died.
    if await knowledge.resume_if_stalled(pool, row, org_id=principal.org_id, settings=settings):
        row = await kb_db.get_document(pool, org_id=principal.org_id, kb_id=kb_id,
                                       document_id=document_id) or row
    return _document(row)


@router.delete("/{kb_id}/documents/{document_id}", status_code=204)
async def delete_document(kb_id: UUID, document_id: UUID, principal: EditorDep,
                          pool: PoolDep) -> Response:
    if not await kb_db.delete_document(pool, org_id=principal.org_id, kb_id=kb_id,
                                       document_id=document_id):
        raise NotFound(f"document {document_id} not found in knowledge base {kb_id}")
    return Response(status_code=204)


@router.post("/{kb_id}/search")
async def search(kb_id: UUID, body: SearchRequest, principal: ViewerDep, pool: PoolDep,
                 settings: SettingsDep) -> dict[str, Any]:
    hits = await knowledge.search_knowledge(pool, org_id=principal.org_id, kb_ids=[kb_id],
                                            query=body.query, top_k=body.top_k,
                                            settings=settings)
    return {"items": hits}
