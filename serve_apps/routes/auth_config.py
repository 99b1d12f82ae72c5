"""What the dashboard needs to know to sign in (no auth: it is asked before signing in)."""

from __future__ import annotations

from fastapi import APIRouter

from serve_apps.deps import SettingsDep

router = APIRouter(tags=["auth"])


@router.get("/v1/auth/config")
async def auth_config(settings: SettingsDep) -> dict[str, object]:
    if settings.oidc_enabled:
        return {"mode": "oidc", "issuer": settings.oidc_issuer, "audience": settings.oidc_audience,
                "client_id": settings.oidc_dashboard_client_id}
    return {"mode": "dev"}
