"""The provider catalog, the organization's provider profiles (admin), and what a flow lacks."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flows.session_providers import (
    flow_missing_secrets,
    org_profile_choices,
    org_providers_view,
    replace_org_profiles,
)
from providers.configs import CAPABILITIES
from providers.profiles import MAX_PROFILES, ProviderProfile
from providers.registry import catalog
from serve_apps.deps import AdminDep, EditorDep, PoolDep, SettingsDep, ViewerDep

router = APIRouter(tags=["providers"])


class OrgProfiles(BaseModel):
    """The organization's provider profiles, whole (a profile not listed is removed)."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[ProviderProfile] = Field(default=[], max_length=MAX_PROFILES)


@router.get("/v1/providers")
async def list_providers(_: ViewerDep) -> dict[str, Any]:
    return {"capabilities": list(CAPABILITIES), "items": catalog()}


@router.get("/v1/org/providers")
async def get_org_providers(principal: AdminDep, pool: PoolDep,
                            settings: SettingsDep) -> dict[str, Any]:
    return await org_providers_view(pool, org_id=principal.org_id, settings=settings)


@router.put("/v1/org/providers")
async def put_org_providers(body: OrgProfiles, principal: AdminDep, pool: PoolDep,
                            settings: SettingsDep) -> dict[str, Any]:
    await replace_org_profiles(pool, org_id=principal.org_id, settings=settings,
                               profiles=body.profiles)
    return await org_providers_view(pool, org_id=principal.org_id, settings=settings)


@router.get("/v1/org/provider-profiles")
async def list_profile_choices(principal: EditorDep, pool: PoolDep,
                               settings: SettingsDep) -> dict[str, Any]:
    """The profiles a flow may pick (names, kinds, bounds; no URLs), for flow editors."""
    return {"items": await org_profile_choices(pool, org_id=principal.org_id,
                                               settings=settings)}


@router.get("/v1/flows/{flow_id}/missing-secrets")
async def get_flow_missing_secrets(flow_id: UUID, principal: EditorDep, pool: PoolDep,
                                   settings: SettingsDep) -> dict[str, Any]:
    return {"missing": await flow_missing_secrets(pool, org_id=principal.org_id,
                                                  flow_id=flow_id, settings=settings)}
