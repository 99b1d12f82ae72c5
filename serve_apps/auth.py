"""Who is calling: a bearer token resolved to a Principal scoped to one organization.

Two kinds of token: API-client tokens (the embedded dev token is one), looked up by hash; and,
when OIDC is configured, JWT access tokens validated against the issuer's JWKS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import asyncpg

from aico.errors import Unauthorized
from aico.settings import Settings
from db.api_clients import get_api_client_by_token
from db.organizations import get_member_role, get_organization_by_external_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    org_id: UUID
    subject: str
    role: str
    via: Literal["api_client", "oidc"]


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


async def authenticate(
    token: str, *, pool: asyncpg.Pool, settings: Settings, oidc_verifier: object | None
) -> Principal:
    if _looks_like_jwt(token):
        if oidc_verifier is None:
            raise Unauthorized("JWT access tokens need OIDC configured (AICO_OIDC_ISSUER/AUDIENCE)")
        claims = await oidc_verifier.verify(token)  # type: ignore[attr-defined]
        org_ref = claims.get(settings.oidc_org_claim)
        if not isinstance(org_ref, str) or not org_ref:
            raise Unauthorized(f"token has no '{settings.oidc_org_claim}' claim")
        org = await get_organization_by_external_id(pool, org_ref)
        if org is None:
            raise Unauthorized("token's organization is not known to this server")
        subject = str(claims.get("sub") or claims.get("client_id") or "")
        role = await get_member_role(pool, org_id=org["id"], subject=subject) or "member"
        return Principal(org_id=org["id"], subject=subject, role=role, via="oidc")

    client = await get_api_client_by_token(pool, token)
    if client is None:
        raise Unauthorized("invalid or revoked token")
    return Principal(
        org_id=client["org_id"], subject=f"client:{client['id']}", role=client["role"],
        via="api_client",
    )
