"""Signing in: what the dashboard needs to know before (no auth), and who it is after."""

from __future__ import annotations

from fastapi import APIRouter

from serve_apps.auth import ROLES
from serve_apps.deps import SettingsDep, ViewerDep

router = APIRouter(tags=["auth"])


@router.get("/v1/auth/config")
async def auth_config(settings: SettingsDep) -> dict[str, object]:
    if settings.oidc_enabled:
        return {"mode": "oidc", "issuer": settings.oidc_issuer, "audience": settings.oidc_audience,
                "client_id": settings.oidc_dashboard_client_id}
    return {"mode": "dev"}


@router.get("/v1/auth/me")
async def who_am_i(principal: ViewerDep) -> dict[str, object]:
    """The caller's organization and role, so the dashboard can offer only what it may do."""
    return {"org_id": principal.org_id, "subject": principal.subject, "role": principal.role,
            "via": principal.via, "roles": list(ROLES)}
