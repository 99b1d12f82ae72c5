"""Outbound phone calls, and the organization's recent calls.

    POST /v1/calls  {"flow_id", "to": "+12125550123", "from_number": "+15551230000",
                     "variables"?: {...}}                                     (editor)
    → 201 {"id", "session_id", "call_ref", "to", "from_number", "status": "initiated"}
    GET  /v1/calls                      recent calls, newest first            (viewer)
    GET  /v1/calls/{id}                 one call with its events              (viewer)

The call goes through the number's carrier (`flows.telephony.carrier_for`). Refusals, before
anything is dialled: 404 (not the organization's number, no such flow), 403
`destination_refused` (the toll-fraud guard; recorded as a refused call), 429 (outbound caps,
sessions per minute), 412 (the carrier's or the flow's providers' secrets), 502 (the carrier).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import NotFound
from db import phone_calls as calls_db
from flows.phone_calls import place_outbound_call
from serve_apps.deps import EditorDep, PoolDep, SessionStartLimit, StateDep, ViewerDep

router = APIRouter(tags=["phone"])


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_id: UUID
    to: str = Field(min_length=3, max_length=32, description="E.164")
    from_number: str = Field(min_length=3, max_length=32,
                             description="one of the organization's numbers (E.164)")
    variables: dict[str, Any] = Field(default={}, max_length=100)


@router.post("/v1/calls", status_code=201)
async def create_call(body: CallCreate, principal: EditorDep, _limit: SessionStartLimit,
                      pool: PoolDep, state: StateDep) -> dict[str, Any]:
    placed = await place_outbound_call(pool, settings=state.settings, org_id=principal.org_id,
                                       flow_id=body.flow_id, from_number=body.from_number,
                                       to=body.to, variables=body.variables)
    return {"id": placed.call_id, "session_id": placed.session_id, "call_ref": placed.call_ref,
            "to": placed.to, "from_number": placed.from_number, "status": "initiated"}


@router.get("/v1/calls")
async def list_calls(principal: ViewerDep, pool: PoolDep,
                     limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    rows = await calls_db.list_phone_calls(pool, org_id=principal.org_id, limit=limit)
    return {"items": [calls_db.call_view(r) for r in rows]}


@router.get("/v1/calls/{call_id}")
async def get_call(call_id: UUID, principal: ViewerDep, pool: PoolDep) -> dict[str, Any]:
    row = await calls_db.get_phone_call(pool, org_id=principal.org_id, call_id=call_id)
    if row is None:
        raise NotFound(f"call {call_id} not found")
    events = await calls_db.list_phone_call_events(pool, org_id=principal.org_id,
                                                   call_id=call_id)
    return {**calls_db.call_view(row), "events": [dict(e) for e in events]}
