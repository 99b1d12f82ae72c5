"""Named FastAPI dependencies: every route's signature says who may call it and for which org.

`ViewerDep`, `EditorDep`, `AdminDep` and `OwnerDep` are the caller (a `Principal`) checked for
at least that role; a route names the one it needs, so its signature is its access rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from aico.errors import RateLimited
from aico.settings import Settings
from db.rate_limits import take_rate_limit_slot
from serve_apps.auth import Principal, Role, TokenVerifier, authenticate, bearer_token
from serve_apps.scopes import require_scope
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
    connection: HTTPConnection,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    token = bearer_token(authorization)
    principal = await authenticate(
        token, pool=pool, settings=state.settings, oidc_verifier=oidc_verifier(state)
    )
    if principal.scopes is not None:
        # The route's template (not the URL), so ids in the path do not change the scope.
        path = getattr(connection.scope.get("route"), "path", None) or connection.url.path
        require_scope(principal.scopes, connection.scope.get("method"), path)  # method: None on WS
    return principal


def oidc_verifier(state: ApiState) -> TokenVerifier | None:
    return state.oidc_verifier()


def require_role(minimum: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        return principal.require(minimum)

    check.__name__ = f"require_{minimum}"
    return check


async def _spend(pool: asyncpg.Pool, principal: Principal, *, bucket: str, limit: int,
                 setting: str, what: str) -> None:
    window = await take_rate_limit_slot(pool, org_id=principal.org_id, bucket=bucket, limit=limit)
    if not window.allowed:
        raise RateLimited(
            f"rate limit reached: at most {limit} {what} per minute"
            f" (settings.limits.{setting}, AICO_LIMIT_{setting.upper()});"
            f" retry in {window.retry_after_s} s",
            limit=setting, retry_after_s=window.retry_after_s)


async def limit_session_starts(
    principal: Annotated[Principal, Depends(get_principal)],
    pool: Annotated[asyncpg.Pool, Depends(get_pool)],
    state: Annotated[ApiState, Depends(get_state)],
) -> None:
    """Counts a session start against the organization's sessions-per-minute limit."""
    limits = state.settings.limits
    await _spend(pool, principal, bucket="sessions", limit=limits.sessions_per_minute_per_org,
                 setting="sessions_per_minute_per_org", what="new sessions per organization")


async def limit_messages(
    session_id: UUID,
    principal: Annotated[Principal, Depends(get_principal)],
    pool: Annotated[asyncpg.Pool, Depends(get_pool)],
    state: Annotated[ApiState, Depends(get_state)],
) -> None:
    """Counts a message against its session's and its organization's per-minute limits."""
    limits = state.settings.limits
    await _spend(pool, principal, bucket=f"messages:{session_id}",
                 limit=limits.messages_per_minute_per_session,
                 setting="messages_per_minute_per_session", what="messages per session")
    await _spend(pool, principal, bucket="messages", limit=limits.messages_per_minute_per_org,
                 setting="messages_per_minute_per_org", what="messages per organization")


StateDep = Annotated[ApiState, Depends(get_state)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# Any authenticated caller; prefer a role dependency below on routes.
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ViewerDep = Annotated[Principal, Depends(require_role("viewer"))]
EditorDep = Annotated[Principal, Depends(require_role("editor"))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
OwnerDep = Annotated[Principal, Depends(require_role("owner"))]
# Rate limits (429 with Retry-After): add to a route's signature as `_limit: SessionStartLimit`.
SessionStartLimit = Annotated[None, Depends(limit_session_starts)]
MessageLimit = Annotated[None, Depends(limit_messages)]
