"""Who is calling: a bearer token resolved to a Principal scoped to one organization, with a role.

Two kinds of token: API-client tokens (the embedded dev token is one), looked up by hash, whose
role is stored with them; and, when OIDC is configured, JWT access tokens validated against the
issuer's JWKS, whose role comes from the organization-roles claim (Logto's `organization_roles`,
entries `"<organization id>:<role name>"`) and the token's scope (permissions `aico:<role>`, as
Logto grants an organization token from its roles), or, failing both, an explicit membership row.
A token that names an organization but no role in it gets nothing: there is no default role.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast
from uuid import UUID

import asyncpg

from aico.errors import Forbidden, Unauthorized
from aico.settings import Settings
from db.api_clients import get_api_client_by_token
from db.organizations import get_member_role, get_organization_by_external_id
from serve_apps.scopes import scopes_from_oidc

logger = logging.getLogger(__name__)

Role = Literal["viewer", "editor", "admin", "owner"]
# Each role can do everything the roles before it can.
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin", "owner")
_RANK = {role: rank for rank, role in enumerate(ROLES)}


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Principal:
    org_id: UUID
    subject: str
    role: Role
    via: Literal["api_client", "oidc"]
    # What this key may do within its role (serve_apps.scopes); None: all the role allows.
    scopes: frozenset[str] | None = None

    def has_role(self, minimum: Role) -> bool:
        return _RANK[self.role] >= _RANK[minimum]

    def require(self, minimum: Role) -> Principal:
        if not self.has_role(minimum):
            raise Forbidden(
                f"this needs the {minimum} role or higher; the caller's role is {self.role}",
                details={"required_role": minimum, "role": self.role},
            )
        return self


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def highest_role(names: list[str]) -> Role | None:
    known = [cast(Role, n.strip().lower()) for n in names if n.strip().lower() in _RANK]
    if not known:
        return None
    return max(known, key=lambda role: _RANK[role])


def roles_from_claims(claims: dict[str, Any], *, claim: str, org_ref: str) -> Role | None:
    """Our role from the token's organization-roles claim: entries `"<org>:<role>"` for this
    organization (Logto), or bare role names when the claim is already per-organization."""
    raw = claims.get(claim)
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return None
    names: list[str] = []
    for entry in raw:
        if not isinstance(entry, str):
            continue
        org, sep, role = entry.rpartition(":")
        if not sep:
            names.append(entry)
        elif org == org_ref:
            names.append(role)
    return highest_role(names)


def role_from_scope(claims: dict[str, Any], *, prefix: str) -> Role | None:
    """Our role from the token's scope: permissions `<prefix><role>`, which Logto grants an
    organization token from the caller's organization roles."""
    scope = claims.get("scope")
    if not prefix or not isinstance(scope, str):
        return None
    return highest_role([s.removeprefix(prefix) for s in scope.split() if s.startswith(prefix)])


async def authenticate(
    token: str, *, pool: asyncpg.Pool, settings: Settings, oidc_verifier: TokenVerifier | None
) -> Principal:
    if _looks_like_jwt(token):
        if oidc_verifier is None:
            raise Unauthorized("JWT access tokens need OIDC configured (AICO_OIDC_ISSUER/AUDIENCE)")
        claims = await oidc_verifier.verify(token)
        org_ref = claims.get(settings.oidc_org_claim)
        if not isinstance(org_ref, str) or not org_ref:
            raise Unauthorized(f"token has no '{settings.oidc_org_claim}' claim")
        org = await get_organization_by_external_id(pool, org_ref)
        if org is None:
            raise Unauthorized("token's organization is not known to this server")
        subject = str(claims.get("sub") or claims.get("client_id") or "")
        role = highest_role([
            r for r in (roles_from_claims(claims, claim=settings.oidc_roles_claim, org_ref=org_ref),
                        role_from_scope(claims, prefix=settings.oidc_role_scope_prefix))
            if r is not None])
        if role is None:
            role = highest_role([await get_member_role(pool, org_id=org["id"], subject=subject)
                                 or ""])
        if role is None:
            raise Forbidden(
                f"the token holds no role in its organization (neither claim"
                f" '{settings.oidc_roles_claim}' nor a '{settings.oidc_role_scope_prefix}<role>'"
                f" scope names one of {', '.join(ROLES)}, and there is no membership)"
            )
        return Principal(org_id=org["id"], subject=subject, role=role, via="oidc",
                         scopes=scopes_from_oidc(claims.get("scope"),
                                                 prefix=settings.oidc_role_scope_prefix))

    client = await get_api_client_by_token(pool, token)
    if client is None:
        raise Unauthorized("invalid or revoked token")
    expires_at = client["expires_at"]
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise Unauthorized(f"token expired at {expires_at.isoformat()}")
    scopes = client["scopes"]
    return Principal(
        org_id=client["org_id"], subject=f"client:{client['id']}", role=client["role"],
        via="api_client", scopes=frozenset(scopes) if scopes is not None else None,
    )
