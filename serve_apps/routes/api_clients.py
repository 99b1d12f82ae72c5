"""The organization's API clients: bearer tokens for integrations, each with a role.

Admins list, create and revoke them. A token is shown once, when it is created; only its hash
is stored. Nobody mints or revokes a token above their own role (an admin cannot make an
owner token), so a role can never be raised through this route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import NotFound
from db import api_clients as api_clients_db
from serve_apps.auth import Role
from serve_apps.deps import AdminDep, PoolDep

router = APIRouter(prefix="/v1/org/api-clients", tags=["api clients"])


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
