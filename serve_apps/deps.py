"""Named FastAPI dependencies: every route's signature says who may call it and for which org."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from aico.settings import Settings
from serve_apps.auth import Principal, authenticate, bearer_token
from serve_apps.state import ApiState, app_state


def get_state(request: HTTPConnection) -> ApiState:
    return app_state(request.app)


async def get_pool(state: Annotated[ApiState, Depends(get_state)]) -> asyncpg.Pool:
    return await state.pool()


def get_settings_dep(state: Annotated[ApiState, Depends(get_state)]) -> Settings:
    return state.settings


async def get_principal(
    state: Annotated[ApiState, Depends(get_state)],
    pool: Annotated[asyncpg.Pool, Depends(get_pool)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    token = bearer_token(authorization)
    return await authenticate(
        token, pool=pool, settings=state.settings, oidc_verifier=oidc_verifier(state)
    )


def oidc_verifier(state: ApiState) -> object | None:
    if not state.settings.oidc_enabled:
        return None
    verifier = state.extras.get("oidc")
    if verifier is None:
        from serve_apps.oidc import OidcVerifier

        verifier = state.extras["oidc"] = OidcVerifier.from_settings(state.settings)
    return verifier


StateDep = Annotated[ApiState, Depends(get_state)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
