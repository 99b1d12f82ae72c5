"""An organization's provider profiles as the API manages them: the admin's view (profiles,
server defaults, what applies, missing secrets), replacing the profiles (each validated over
the server default, its URL checked by the egress guard unless marked internal), and what a
flow's sessions would lack (the secrets behind a 412)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from aico.errors import NotFound
from aico.settings import Settings
from db import flows as flows_db
from db import provider_profiles as profiles_db
from db import secrets as secrets_db
from flows.sessions import CHANNEL_CAPABILITIES, check_profile_egress
from providers.profiles import ProviderProfile, validate_profiles
from providers.registry import parse_config
from providers.resolution import resolve_providers, server_default_providers, validate_profile


async def org_profiles(pool: asyncpg.Pool, *, org_id: UUID) -> list[ProviderProfile]:
    rows = await profiles_db.list_provider_profiles(pool, org_id=org_id)
    return [ProviderProfile.from_row(r) for r in rows]


async def org_providers_view(pool: asyncpg.Pool, *, org_id: UUID,
                             settings: Settings) -> dict[str, Any]:
    """`GET /v1/org/providers`: the profiles, the server defaults, what a flow that names no
    profile runs (and from which layer), and the secrets the profiles name that are missing."""
    profiles = await org_profiles(pool, org_id=org_id)
    defaults = server_default_providers(settings)
    resolved = resolve_providers(profiles=profiles, default=defaults)
    needed: set[str] = set(resolved.required_secrets())
    for p in profiles:
        needed.update(resolve_providers(flow={p.capability: {"profile": p.name}},
                                        profiles=profiles, default=defaults,
                                        capabilities=(p.capability,)).required_secrets())
    present = await secrets_db.list_secret_names(pool, org_id=org_id, names=sorted(needed))
    return {
        "profiles": [p.model_dump() for p in profiles],
        "defaults": defaults,
        "resolved": resolved.configs,
        "sources": resolved.sources,
        "missing_secrets": sorted(n for n in needed if n not in present),
    }


async def org_profile_choices(pool: asyncpg.Pool, *, org_id: UUID,
                              settings: Settings) -> list[dict[str, Any]]:
    """What a flow editor may pick: each profile's name, kind, bounds and the secret names it
    needs, without its URLs or deployment."""
    defaults = server_default_providers(settings)
    out = []
    for p in await org_profiles(pool, org_id=org_id):
        config = validate_profile(p, defaults)
        out.append({"name": p.name, "capability": p.capability, "kind": config["kind"],
                    "default": p.default, "model": config.get("model"),
                    "allowed_models": p.allowed_models, "max_tokens_cap": p.max_tokens_cap,
                    "required_secrets": parse_config(p.capability, config)[1]
                    .required_secrets()})
    return out


async def replace_org_profiles(pool: asyncpg.Pool, *, org_id: UUID, settings: Settings,
                               profiles: list[ProviderProfile]) -> None:
    """Make the organization's profiles exactly `profiles`; 422 names a bad field, 403 a URL
    the egress guard refuses (a profile not marked internal), and nothing is stored then."""
    validate_profiles(profiles)
    defaults = server_default_providers(settings)
    for p in profiles:
        config = validate_profile(p, defaults)
        if not p.internal:
            await check_profile_egress(pool, org_id=org_id, config=config)
    await profiles_db.replace_provider_profiles(pool, org_id=org_id,
                                                profiles=[p.row() for p in profiles])


async def flow_missing_secrets(pool: asyncpg.Pool, *, org_id: UUID, flow_id: UUID,
                               settings: Settings) -> list[str]:
    """The secrets a session of the flow's draft would lack on any channel (its 412)."""
    flow = await flows_db.get_flow(pool, org_id=org_id, flow_id=flow_id)
    if flow is None:
        raise NotFound(f"flow {flow_id} not found")
    resolved = resolve_providers(
        flow=(flow["document"] or {}).get("providers") or {},
        profiles=await org_profiles(pool, org_id=org_id),
        default=server_default_providers(settings),
        capabilities=CHANNEL_CAPABILITIES["voice"])
    needed = resolved.required_secrets()
    present = await secrets_db.list_secret_names(pool, org_id=org_id, names=needed)
    return [n for n in needed if n not in present]
