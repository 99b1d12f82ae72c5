"""Named FastAPI dependencies: every route's signature says who may call it and for which org.

`ViewerDep`, `EditorDep`, `AdminDep` and `OwnerDep` are the caller (a `Principal`) checked for
at least that role; a route names the one it needs, so its signature is its access rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from aico.settings import Settings
from serve_apps.auth import Principal, Role, TokenVerifier, authenticate, bearer_token
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


def oidc_verifier(state: ApiState) -> TokenVerifier | None:
    return state.oidc_verifier()


def require_role(minimum: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        return principal.require(minimum)

    check.__name__ = f"require_{minimum}"
    return check


StateDep = Annotated[ApiState, Depends(get_state)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# Any authenticated caller; prefer a role dependency below on routes.
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ViewerDep = Annotated[Principal, Depends(require_role("viewer"))]
EditorDep = Annotated[Principal, Depends(require_role("editor"))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
OwnerDep = Annotated[Principal, Depends(require_role("owner"))]
