"""A user's memory: what AICO remembers of one end user of the organization (the `user.id`
their sessions were started with), listed page by page, and erased on request: their episodes
and their sessions with everything attached (events, transcripts, embeddings).

Editors read it; erasing is an admin's act, and so is the organization's retention period
(`/v1/org/memory-retention`), which the replicas' sweeper enforces."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from db import memory_episodes as episodes_db
from db import memory_facts as facts_db
from serve_apps.deps import AdminDep, EditorDep, PoolDep

router = APIRouter(prefix="/v1/users", tags=["memory"])
retention_router = APIRouter(prefix="/v1/org/memory-retention", tags=["memory"])

UserId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/{user_id}/memory")
async def get_user_memory(user_id: UserId, principal: EditorDep, pool: PoolDep,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50,
                          offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    total, rows = await episodes_db.list_user_episodes(pool, org_id=principal.org_id,
                                                       user_id=user_id, limit=limit,
                                                       offset=offset)
    return {"user_id": user_id, "total": total, "limit": limit, "offset": offset,
            "episodic": [{"id": r["id"], "cluster": r["user_cluster"],
                          "session_id": str(r["session_id"]) if r["session_id"] else None,
                          "role": r["role"], "text": r["text"],
                          "created_at": r["created_at"].isoformat()} for r in rows],
            "facts": [{"type": f["type"], "value": f["value"],
                       "created_at": f["created_at"].isoformat(),
                       "superseded_at": f["superseded_at"].isoformat()
                       if f["superseded_at"] else None}
                      for f in await facts_db.list_facts(pool, org_id=principal.org_id,
                                                         user_id=user_id)]}


@router.delete("/{user_id}/memory")
async def delete_user_memory(user_id: UserId, principal: AdminDep,
                             pool: PoolDep) -> dict[str, Any]:
    deleted = await episodes_db.delete_user_data(pool, org_id=principal.org_id,
                                                 user_id=user_id)
    return {"user_id": user_id, "deleted": deleted}


class MemoryRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int | None = Field(ge=1, le=36500, description="null: kept until erased")


@retention_router.get("")
async def get_memory_retention(principal: AdminDep, pool: PoolDep) -> MemoryRetention:
    return MemoryRetention(days=await episodes_db.get_memory_retention(
        pool, org_id=principal.org_id))


@retention_router.put("")
async def put_memory_retention(body: MemoryRetention, principal: AdminDep,
                               pool: PoolDep) -> MemoryRetention:
    """Remembered turns and facts older than `days` are deleted by the replicas' sweeper."""
    await episodes_db.set_memory_retention(pool, org_id=principal.org_id, days=body.days)
    return body
