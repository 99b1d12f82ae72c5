"""The provider catalog and the organization's provider layer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from aico.errors import ValidationFailed
from db import provider_configs as provider_configs_db
from db import secrets as secrets_db
from providers.configs import CAPABILITIES
from providers.registry import catalog
from providers.resolution import resolve_providers, server_default_providers
from serve_apps.deps import AdminDep, PoolDep, SettingsDep, ViewerDep

router = APIRouter(tags=["providers"])


class OrgProviders(BaseModel):
    """The organization layer: one (possibly partial) config per capability; null removes."""

    model_config = ConfigDict(extra="forbid")

    stt: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None
    tts: dict[str, Any] | None = None
    embeddings: dict[str, Any] | None = None


@router.get("/v1/providers")
async def list_providers(_: ViewerDep) -> dict[str, Any]:
    return {"capabilities": list(CAPABILITIES), "items": catalog()}


async def _org_view(pool, principal, settings) -> dict[str, Any]:
    layer = await provider_configs_db.list_provider_configs(pool, org_id=principal.org_id)
    defaults = server_default_providers(settings)
    resolved = resolve_providers(organization=layer, default=defaults)
    needed = resolved.required_secrets()
    present = await secrets_db.list_secret_names(pool, org_id=principal.org_id, names=needed)
    return {
        "providers": layer,
        "defaults": defaults,
        "resolved": resolved.configs,
        "sources": resolved.sources,
        "missing_secrets": [n for n in needed if n not in present],
    }


@router.get("/v1/org/providers")
async def get_org_providers(principal: AdminDep, pool: PoolDep,
                            settings: SettingsDep) -> dict[str, Any]:
    return await _org_view(pool, principal, settings)


@router.put("/v1/org/providers")
async def put_org_providers(body: OrgProviders, principal: AdminDep, pool: PoolDep,
                            settings: SettingsDep) -> dict[str, Any]:
    layer = {cap: cfg for cap, cfg in body.model_dump().items() if cfg}
    # Validate now, over the defaults, so a bad config is refused here and not at call time.
    try:
        resolve_providers(organization=layer, default=server_default_providers(settings))
    except ValidationFailed as err:
        raise ValidationFailed(err.message, details=err.details) from None
    async with pool.acquire() as conn:
        await provider_configs_db.replace_provider_configs(conn, org_id=principal.org_id,
                                                           configs=layer)
    return await _org_view(pool, principal, settings)
