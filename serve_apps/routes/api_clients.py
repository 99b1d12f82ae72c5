"""The organization's API clients: bearer tokens for integrations, each with a role.

`/v1/api-keys` is the documented name (issue 14): the same keys, with optional `scopes` (what
the key may do within its role, `serve_apps.scopes`) and `expires_at`; a key past it is 401.
`/v1/org/api-clients` stays, unchanged, for the dashboard.

Admins list, create and revoke them. A token is shown once, when it is created; only its hash
is stored. Nobody mints or revokes a token above their own role (an admin cannot make an
owner token), so a role can never be raised through this route.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import NotFound, ValidationFailed
from db import api_clients as api_clients_db
from serve_apps.auth import Role
from serve_apps.deps import AdminDep, PoolDep
from serve_apps.scopes import validate_scopes

router = APIRouter(prefix="/v1/org/api-clients", tags=["api clients"])
keys_router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


class ApiClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Role


class ApiClientOut(BaseModel):
    id: UUID
    name: str
    role: Role
    created_at: datetime


@router.get("")
async def list_api_clients(principal: AdminDep, pool: PoolDep) -> dict[str, list[ApiClientOut]]:
    rows = await api_clients_db.list_api_clients(pool, org_id=principal.org_id)
    return {"items": [ApiClientOut(**dict(r)) for r in rows]}


@router.post("", status_code=201)
async def create_api_client(body: ApiClientCreate, principal: AdminDep,
                            pool: PoolDep) -> dict[str, Any]:
    principal.require(body.role)
    token = api_clients_db.new_token()
    client_id = await api_clients_db.insert_api_client(
        pool, org_id=principal.org_id, name=body.name, token=token, role=body.role)
    row = await api_clients_db.get_api_client(pool, org_id=principal.org_id, client_id=client_id)
    assert row is not None  # just inserted, in this organization
    # The only time the token is shown: the caller stores it, we keep its hash.
    return {**ApiClientOut(**dict(row)).model_dump(mode="json"), "token": token}


@router.delete("/{client_id}", status_code=204)
async def revoke_api_client(client_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    row = await api_clients_db.get_api_client(pool, org_id=principal.org_id, client_id=client_id)
    if row is None:
        raise NotFound(f"API client {client_id} not found")
    principal.require(row["role"])
    await api_clients_db.revoke_api_client(pool, org_id=principal.org_id, client_id=client_id)
    return Response(status_code=204)


class ApiKeyCreate(ApiClientCreate):
    scopes: list[str] | None = Field(default=None, max_length=32)
    expires_at: datetime | None = None


class ApiKeyOut(ApiClientOut):
    scopes: list[str] | None
    expires_at: datetime | None


@keys_router.get("")
async def list_api_keys(principal: AdminDep, pool: PoolDep) -> dict[str, list[ApiKeyOut]]:
    rows = await api_clients_db.list_api_clients(pool, org_id=principal.org_id)
    return {"items": [ApiKeyOut(**dict(r)) for r in rows]}


@keys_router.post("", status_code=201)
async def create_api_key(body: ApiKeyCreate, principal: AdminDep, pool: PoolDep) -> dict[str, Any]:
    principal.require(body.role)
    scopes = validate_scopes(body.scopes)
    if body.expires_at is not None and (body.expires_at.tzinfo is None
                                        or body.expires_at <= datetime.now(UTC)):
        raise ValidationFailed(
            "'expires_at' must be a future time with a time zone (e.g. 2030-01-01T00:00:00Z)",
            details=[{"field": "expires_at", "message": "not a future time with a time zone"}])
    if principal.scopes is not None and (scopes is None or not set(scopes) <= principal.scopes):
        # A scoped key may mint keys only within its own scopes, as no role is minted above.
        raise ValidationFailed(
            "'scopes' must stay within the calling key's own scopes"
            f" ({', '.join(sorted(principal.scopes))})",
            details=[{"field": "scopes", "message": "wider than the caller's"}])
    token = api_clients_db.new_token()
    key_id = await api_clients_db.insert_api_client(
        pool, org_id=principal.org_id, name=body.name, token=token, role=body.role,
        scopes=scopes, expires_at=body.expires_at)
    row = await api_clients_db.get_api_client(pool, org_id=principal.org_id, client_id=key_id)
    assert row is not None  # just inserted, in this organization
    # The only time the key is shown: the caller stores it, we keep its hash.
    return {**ApiKeyOut(**dict(row)).model_dump(mode="json"), "key": token}


@keys_router.delete("/{key_id}", status_code=204)
async def revoke_api_key(key_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    return await revoke_api_client(key_id, principal, pool)
