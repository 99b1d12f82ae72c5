"""Flows: create, list, edit the draft (optimistic revision), publish immutable versions, delete.

Reading is for viewers, creating and editing drafts for editors; publishing (what callers reach)
and deleting are for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from aico.errors import Conflict, NotFound
from db import flows as flows_db
from flows.document import flow_document_json_schema, parse_flow_document, validate_for_publish
from serve_apps.deps import AdminDep, EditorDep, PoolDep, ViewerDep
from serve_apps.greetings import cache_published_greeting

router = APIRouter(prefix="/v1/flows", tags=["flows"])


class FlowCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    document: dict[str, Any]


class FlowUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    document: dict[str, Any]
    draft_revision: int = Field(ge=1, description="the draft revision this edit started from")


class FlowOut(BaseModel):
    id: UUID
    name: str
    description: str
    document: dict[str, Any]
    draft_revision: int
    latest_version: int
    created_at: datetime
    updated_at: datetime


class FlowVersionOut(BaseModel):
    id: UUID
    version: int
    document: dict[str, Any]
    created_at: datetime


def _flow_out(row: asyncpg.Record) -> FlowOut:
    return FlowOut(**{k: row[k] for k in FlowOut.model_fields})


def _version_out(row: asyncpg.Record) -> FlowVersionOut:
    return FlowVersionOut(**{k: row[k] for k in FlowVersionOut.model_fields})


@router.get("/schema")
async def flow_schema(_: ViewerDep) -> dict[str, Any]:
    return flow_document_json_schema()


@router.post("", status_code=201)
async def create_flow(body: FlowCreate, principal: EditorDep, pool: PoolDep) -> FlowOut:
    document = parse_flow_document(body.document).model_dump(mode="json", by_alias=True, exclude_none=True)
    row = await flows_db.insert_flow(
        pool, org_id=principal.org_id, name=body.name, description=body.description,
        document=document,
    )
    return _flow_out(row)


@router.get("")
async def list_flows(principal: ViewerDep, pool: PoolDep) -> dict[str, list[FlowOut]]:
    rows = await flows_db.list_flows(pool, org_id=principal.org_id)
    return {"items": [_flow_out(r) for r in rows]}


@router.get("/{flow_id}")
async def get_flow(flow_id: UUID, principal: ViewerDep, pool: PoolDep) -> FlowOut:
    row = await flows_db.get_flow(pool, org_id=principal.org_id, flow_id=flow_id)
    if row is None:
        raise NotFound(f"flow {flow_id} not found")
    return _flow_out(row)


@router.put("/{flow_id}")
async def update_flow(
    flow_id: UUID, body: FlowUpdate, principal: EditorDep, pool: PoolDep
) -> FlowOut:
    current = await flows_db.get_flow(pool, org_id=principal.org_id, flow_id=flow_id)
    if current is None:
        raise NotFound(f"flow {flow_id} not found")
    document = parse_flow_document(body.document).model_dump(mode="json", by_alias=True, exclude_none=True)
    row = await flows_db.update_flow_draft(
        pool, org_id=principal.org_id, flow_id=flow_id, expected_revision=body.draft_revision,
        name=body.name or current["name"],
        description=current["description"] if body.description is None else body.description,
        document=document,
    )
    if row is None:
        latest = await flows_db.get_flow(pool, org_id=principal.org_id, flow_id=flow_id)
        if latest is None:
            raise NotFound(f"flow {flow_id} not found")
        raise Conflict(
            f"draft_revision {body.draft_revision} is stale: the draft is at revision"
            f" {latest['draft_revision']}; reload and apply your change again",
            details={"current_revision": latest["draft_revision"]},
        )
    return _flow_out(row)


@router.post("/{flow_id}/publish", status_code=201)
async def publish_flow(flow_id: UUID, principal: AdminDep, pool: PoolDep) -> FlowVersionOut:
    current = await flows_db.get_flow(pool, org_id=principal.org_id, flow_id=flow_id)
    if current is None:
        raise NotFound(f"flow {flow_id} not found")
    document = validate_for_publish(current["document"])
    published = document.model_dump(mode="json", by_alias=True, exclude_none=True)
    async with pool.acquire() as conn:
        row = await flows_db.insert_flow_version(
            conn, org_id=principal.org_id, flow_id=flow_id, document=published)
    if row is None:
        raise NotFound(f"flow {flow_id} not found")
    await cache_published_greeting(published)  # the first call plays it without synthesis
    return _version_out(row)


@router.get("/{flow_id}/versions")
async def list_versions(
    flow_id: UUID, principal: ViewerDep, pool: PoolDep
) -> dict[str, list[FlowVersionOut]]:
    if await flows_db.get_flow(pool, org_id=principal.org_id, flow_id=flow_id) is None:
        raise NotFound(f"flow {flow_id} not found")
    rows = await flows_db.list_flow_versions(pool, org_id=principal.org_id, flow_id=flow_id)
    return {"items": [_version_out(r) for r in rows]}


@router.delete("/{flow_id}", status_code=204)
async def delete_flow(flow_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    if not await flows_db.soft_delete_flow(pool, org_id=principal.org_id, flow_id=flow_id):
        raise NotFound(f"flow {flow_id} not found")
    return Response(status_code=204)
