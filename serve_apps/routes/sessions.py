"""Reading sessions: list with filters and a keyset cursor, one session whole, its event log."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from aico.errors import BadRequest, NotFound
from db import sessions as sessions_db
from serve_apps.deps import PoolDep, ViewerDep

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

SessionStatus = Literal["active", "waiting", "ended", "failed"]


def _encode_cursor(created_at: datetime, session_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{session_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        created, _, sid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), UUID(sid)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not a cursor this API returned", details={"field": "cursor"})


def session_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "flow_id": row["flow_id"], "flow_version": row["flow_version"],
        "parent_session_id": row["parent_session_id"], "channel": row["channel"],
        "status": row["status"], "user_id": row["user_id"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
        "ended_at": row["ended_at"],
    }


@router.get("")
async def list_sessions(
    principal: ViewerDep,
    pool: PoolDep,
    flow_id: UUID | None = None,
    status: SessionStatus | None = None,
    channel: Literal["chat", "voice", "whatsapp", "phone"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = None,
) -> dict[str, Any]:
    rows = await sessions_db.list_sessions(
        pool, org_id=principal.org_id, flow_id=flow_id, status=status, channel=channel,
        since=since, until=until, before=_decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = (
        _encode_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > limit else None
    )
    return {"items": [session_summary(r) for r in page], "next_cursor": next_cursor}


@router.get("/{session_id}")
async def get_session(session_id: UUID, principal: ViewerDep, pool: PoolDep) -> dict[str, Any]:
    row = await sessions_db.get_session(pool, org_id=principal.org_id, session_id=session_id)
    if row is None:
        raise NotFound(f"session {session_id} not found")
    turns = await sessions_db.list_transcript_turns(
        pool, org_id=principal.org_id, session_id=session_id
    )
    return {
        **session_summary(row),
        "variables": row["variables"],
        "transcript": [
            {"seq": t["seq"], "role": t["role"], "text": t["text"],
             "created_at": t["created_at"]}
            for t in turns
        ],
        "metrics": row["metrics"],
    }


@router.get("/{session_id}/events")
async def list_events(
    session_id: UUID,
    principal: ViewerDep,
    pool: PoolDep,
    after_seq: int = Query(default=0, ge=0),
    limit: int = Query(default=500, ge=1, le=1000),
) -> dict[str, Any]:
    if await sessions_db.get_session(pool, org_id=principal.org_id, session_id=session_id) is None:
        raise NotFound(f"session {session_id} not found")
    rows = await sessions_db.list_session_events(
        pool, org_id=principal.org_id, session_id=session_id, after_seq=after_seq, limit=limit
    )
    return {"items": [dict(r) for r in rows]}
