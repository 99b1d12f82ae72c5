"""Organization secrets: write-only values, listed by name and times only; admins only (even
the names tell what an organization integrates with)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import NotFound
from db import secrets as secrets_db
from providers.secrets import store_secret, validate_secret_name
from serve_apps.deps import AdminDep, PoolDep, SettingsDep

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])


class SecretWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, repr=False)


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


@router.put("/{name}")
async def put_secret(name: str, body: SecretWrite, principal: AdminDep, pool: PoolDep,
                     settings: SettingsDep, response: Response) -> SecretOut:
    row = await store_secret(pool, org_id=principal.org_id, name=name, value=body.value,
                             settings=settings)
    response.status_code = 201 if row["created"] else 200
    return SecretOut(name=row["name"], created_at=row["created_at"],
                     updated_at=row["updated_at"])


@router.get("")
async def list_secrets(principal: AdminDep, pool: PoolDep) -> dict[str, list[SecretOut]]:
    rows = await secrets_db.list_secrets(pool, org_id=principal.org_id)
    return {"items": [SecretOut(name=r["name"], created_at=r["created_at"],
                                updated_at=r["updated_at"]) for r in rows]}


@router.delete("/{name}", status_code=204)
async def delete_secret(name: str, principal: AdminDep, pool: PoolDep) -> Response:
    validate_secret_name(name)
    if not await secrets_db.delete_secret(pool, org_id=principal.org_id, name=name):
        raise NotFound(f"no secret named {name!r}")
    return Response(status_code=204)
