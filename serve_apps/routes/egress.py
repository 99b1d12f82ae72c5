"""An organization's egress allow-list: the private hosts and networks its flows and provider
URLs may reach (`aico.egress`). Admins only: it opens the organization's network to flows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from aico.egress import normalize_allowlist
from db import egress_allowlist as egress_db
from serve_apps.deps import AdminDep, PoolDep

router = APIRouter(prefix="/v1/org/egress-allowlist", tags=["organization"])


class AllowlistWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Validated by normalize_allowlist so that the 422 names the entry at fault.
    hosts: Any


class AllowlistOut(BaseModel):
    hosts: list[str]


@router.get("")
async def get_egress_allowlist(principal: AdminDep, pool: PoolDep) -> AllowlistOut:
    return AllowlistOut(hosts=await egress_db.get_egress_allowlist(pool, org_id=principal.org_id))


@router.put("")
async def put_egress_allowlist(body: AllowlistWrite, principal: AdminDep,
                               pool: PoolDep) -> AllowlistOut:
    hosts = normalize_allowlist(body.hosts)
    stored = await egress_db.replace_egress_allowlist(pool, org_id=principal.org_id, hosts=hosts)
    return AllowlistOut(hosts=stored)
