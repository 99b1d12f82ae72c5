"""Scopes of API keys (and OIDC client-credentials tokens): `<resource>:<read|write>`.

A key with scopes may call a route only when it holds the route's scope, on top of its role;
a key without scopes may do everything its role allows. The route's scope follows from its
path and method (`scope_for_route`), so a new route is covered without declaring anything:
GET/HEAD read, every other method writes, and a WebSocket observer reads.
"""

from __future__ import annotations

from aico.errors import Forbidden, ValidationFailed

RESOURCES = ("flows", "sessions", "providers", "secrets", "egress", "api_keys", "webhooks",
             "widgets")
SCOPES: tuple[str, ...] = tuple(f"{r}:{a}" for r in RESOURCES for a in ("read", "write"))

# Path prefix -> resource; the first (longest) match wins, so sessions of a flow are sessions.
_PREFIXES: tuple[tuple[str, str | None], ...] = (
    ("/v1/flows/{flow_id}/sessions", "sessions"),
    ("/v1/flows/{flow_id}/missing-secrets", "sessions"),
    ("/v1/flows", "flows"),
    ("/v1/sessions", "sessions"),
    ("/v1/secrets", "secrets"),
    ("/v1/providers", "providers"),
    ("/v1/org/providers", "providers"),
    ("/v1/org/provider-profiles", "providers"),
    ("/v1/org/egress-allowlist", "egress"),
    ("/v1/org/api-clients", "api_keys"),
    ("/v1/api-keys", "api_keys"),
    ("/v1/webhooks", "webhooks"),
    ("/v1/widgets", "widgets"),
    ("/v1/auth/me", None),  # who am I: every key may ask
)


def scope_for_route(method: str | None, path: str) -> str | None:
    """The scope a route needs (`method` None for a WebSocket), or None when any key may call
    it. An unknown /v1 path needs `admin:<action>`, which no key can hold: refused, not open."""
    action = "read" if method in ("GET", "HEAD", None) else "write"
    for prefix, resource in _PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return f"{resource}:{action}" if resource else None
    return f"admin:{action}" if path.startswith("/v1/") else None


def require_scope(scopes: frozenset[str] | None, method: str | None, path: str) -> None:
    needed = scope_for_route(method, path)
    if scopes is None or needed is None or needed in scopes:
        return
    raise Forbidden(
        f"this key's scopes ({', '.join(sorted(scopes)) or 'none'}) do not include {needed},"
        f" which {method or 'WS'} {path} needs",
        details={"required_scope": needed, "scopes": sorted(scopes)})


def validate_scopes(scopes: list[str] | None, *, field: str = "scopes") -> list[str] | None:
    """Scopes as stored (sorted, unique), or 422 naming the unknown ones."""
    if scopes is None:
        return None
    unknown = sorted({s for s in scopes if s not in SCOPES})
    if unknown:
        raise ValidationFailed(
            f"unknown scopes {', '.join(unknown)} in '{field}'; known: {', '.join(SCOPES)}",
            details=[{"field": field, "message": f"unknown scope {s}"} for s in unknown])
    return sorted(set(scopes))


def scopes_from_oidc(scope_claim: object, *, prefix: str) -> frozenset[str] | None:
    """Our scopes named in an OIDC token's `scope` with the role prefix (Logto API permissions
    `aico:sessions:write`, beside `aico:editor`); None when it names none (the token's role
    alone decides). Bare names are the issuer's own permissions and narrow nothing."""
    if not prefix or not isinstance(scope_claim, str):
        return None
    ours = frozenset(s.removeprefix(prefix) for s in scope_claim.split()
                     if s.startswith(prefix) and s.removeprefix(prefix) in SCOPES)
    return ours or None
