"""Phone numbers (admin writes, viewer reads) and the organization's dialing policy (admin).

    POST   /v1/phone-numbers       {"number": "+15551230000", "flow_id", "provider": "twilio",
                                    "settings": {"account_sid": "AC…",
                                                 "auth_token_secret": "TWILIO_AUTH_TOKEN"}}
    GET    /v1/phone-numbers       GET/PATCH/DELETE /v1/phone-numbers/{id}
    GET    /v1/phone-numbers/{id}/calls          the number's recent calls
    GET    /v1/org/dialing-policy  PUT /v1/org/dialing-policy
           {"allowed_country_codes": ["1"], "allowed_prefixes": ["+4420"], "allow_premium": false}

Numbers are E.164 (`phonenumbers`); a number belongs to one organization (409 if any holds it).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import Conflict, NotFound
from db import flows as flows_db
from db import phone_calls as calls_db
from db import phone_numbers as numbers_db
from flows.telephony import (
    PROVIDERS,
    normalize_dialing_codes,
    normalize_number,
    validate_number_settings,
)
from serve_apps.deps import AdminDep, PoolDep, ViewerDep

router = APIRouter(tags=["phone"])


class NumberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=3, max_length=32, description="E.164, e.g. +15551230000")
    flow_id: UUID
    provider: str = Field(description=f"one of {', '.join(PROVIDERS)}")
    settings: dict[str, Any] = Field(default_factory=dict)


class NumberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_id: UUID | None = None
    settings: dict[str, Any] | None = None


class DialingPolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_country_codes: list[str] = Field(default_factory=list, max_length=250)
    allowed_prefixes: list[str] = Field(default_factory=list, max_length=250)
    allow_premium: bool = False


def number_view(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "number", "flow_id", "provider", "settings", "created_at",
                                "updated_at")}


async def _check_flow(pool: Any, org_id: UUID, flow_id: UUID) -> None:
    if await flows_db.get_flow(pool, org_id=org_id, flow_id=flow_id) is None:
        raise NotFound(f"flow_id: flow {flow_id} not found")


@router.post("/v1/phone-numbers", status_code=201)
async def create_number(body: NumberCreate, principal: AdminDep,
                        pool: PoolDep) -> dict[str, Any]:
    number = normalize_number(body.number)
    settings = validate_number_settings(body.provider, body.settings)
    await _check_flow(pool, principal.org_id, body.flow_id)
    row = await numbers_db.insert_phone_number(pool, org_id=principal.org_id, number=number,
                                               flow_id=body.flow_id, provider=body.provider,
                                               settings=settings)
    if row is None:
        raise Conflict(f"number: {number} is configured already")
    return number_view(row)


@router.get("/v1/phone-numbers")
async def list_numbers(principal: ViewerDep, pool: PoolDep) -> dict[str, Any]:
    rows = await numbers_db.list_phone_numbers(pool, org_id=principal.org_id)
    return {"items": [number_view(r) for r in rows]}


@router.get("/v1/phone-numbers/{number_id}")
async def get_number(number_id: UUID, principal: ViewerDep, pool: PoolDep) -> dict[str, Any]:
    row = await numbers_db.get_phone_number(pool, org_id=principal.org_id, number_id=number_id)
    if row is None:
        raise NotFound(f"phone number {number_id} not found")
    return number_view(row)


@router.patch("/v1/phone-numbers/{number_id}")
async def update_number(number_id: UUID, body: NumberUpdate, principal: AdminDep,
                        pool: PoolDep) -> dict[str, Any]:
    row = await numbers_db.get_phone_number(pool, org_id=principal.org_id, number_id=number_id)
    if row is None:
        raise NotFound(f"phone number {number_id} not found")
    changes: dict[str, Any] = {}
    if body.flow_id is not None:
        await _check_flow(pool, principal.org_id, body.flow_id)
        changes["flow_id"] = body.flow_id
    if body.settings is not None:
        changes["settings"] = validate_number_settings(row["provider"], body.settings)
    if changes:
        row = await numbers_db.update_phone_number(pool, org_id=principal.org_id,
                                                   number_id=number_id, changes=changes)
        if row is None:
            raise NotFound(f"phone number {number_id} not found")
    return number_view(row)


@router.delete("/v1/phone-numbers/{number_id}", status_code=204)
async def delete_number(number_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    if not await numbers_db.delete_phone_number(pool, org_id=principal.org_id,
                                                number_id=number_id):
        raise NotFound(f"phone number {number_id} not found")
    return Response(status_code=204)


@router.get("/v1/phone-numbers/{number_id}/calls")
async def list_number_calls(number_id: UUID, principal: ViewerDep, pool: PoolDep,
                            limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    if await numbers_db.get_phone_number(pool, org_id=principal.org_id,
                                         number_id=number_id) is None:
        raise NotFound(f"phone number {number_id} not found")
    rows = await calls_db.list_phone_calls(pool, org_id=principal.org_id, number_id=number_id,
                                           limit=limit)
    return {"items": [calls_db.call_view(r) for r in rows]}


def _policy_view(row: Any) -> dict[str, Any]:
    if row is None:
        return {"allowed_country_codes": [], "allowed_prefixes": [], "allow_premium": False,
                "updated_at": None}
    return {"allowed_country_codes": list(row["allowed_country_codes"]),
            "allowed_prefixes": list(row["allowed_prefixes"]),
            "allow_premium": row["allow_premium"], "updated_at": row["updated_at"]}


@router.get("/v1/org/dialing-policy")
async def get_dialing_policy(principal: AdminDep, pool: PoolDep) -> dict[str, Any]:
    return _policy_view(await numbers_db.get_phone_dialing_policy(pool, org_id=principal.org_id))


@router.put("/v1/org/dialing-policy")
async def put_dialing_policy(body: DialingPolicyBody, principal: AdminDep,
                             pool: PoolDep) -> dict[str, Any]:
    row = await numbers_db.upsert_phone_dialing_policy(
        pool, org_id=principal.org_id,
        allowed_country_codes=normalize_dialing_codes(body.allowed_country_codes,
                                                      field_name="allowed_country_codes"),
        allowed_prefixes=normalize_dialing_codes(body.allowed_prefixes,
                                                 field_name="allowed_prefixes"),
        allow_premium=body.allow_premium)
    return _policy_view(row)
