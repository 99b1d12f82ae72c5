"""OIDC access-token verification: JWTs from the configured issuer, checked against its JWKS.

The issuer's signing keys come from `{issuer}/.well-known/openid-configuration` → `jwks_uri`, are
cached for `oidc_jwks_cache_s`, and are fetched again when a token names a key id (`kid`) we have
not seen — that is how a key rotation at the issuer reaches us. A refetch for an unknown kid
happens at most once per `unknown_kid_refetch_floor_s`, so a flood of made-up kids cannot make us
hammer the issuer. Signatures are checked with joserfc (the JOSE core of authlib ≥ 1.7) with the
accepted algorithms passed explicitly — joserfc would otherwise refuse ES384, which Logto signs
with — and only asymmetric algorithms are ever accepted: `alg=none` and HS* are refused before any
key is looked at. Then `iss`, `aud` (a string or a list), `exp`, `nbf` and `iat` are checked with a
small leeway for clock skew.

Every failure is an `Unauthorized` whose message says what was wrong; neither messages nor logs
ever contain the token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from aico.errors import Unauthorized
from aico.settings import Settings

logger = logging.getLogger(__name__)

# Signature algorithms this verifier can ever accept, with the key type each needs. Symmetric
# (HS*) algorithms are absent on purpose: with a public JWKS they would let anyone sign.
_KEY_TYPE_FOR_ALG: dict[str, str] = {
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "EdDSA": "OKP", "Ed25519": "OKP",
}

_DEFAULT_LEEWAY_S = 30
_DEFAULT_UNKNOWN_KID_REFETCH_FLOOR_S = 10.0
_DEFAULT_HTTP_TIMEOUT_S = 5.0
_UNREACHABLE = "cannot reach identity provider"

VerifyKey = ECKey | RSAKey | OKPKey


class IdentityProviderUnavailable(Exception):
    """Discovery or JWKS could not be fetched (network error, bad status, bad document)."""


@dataclass(frozen=True)
class _KeySet:
    """One fetched JWKS: signing keys by kid, plus those published without a kid."""

    by_kid: dict[str, VerifyKey] = field(default_factory=dict)
    without_kid: tuple[VerifyKey, ...] = ()
    generation: int = 0

    @classmethod
    def from_jwks(cls, document: Any, *, generation: int) -> _KeySet:
        raw_keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw_keys, list):
            raise IdentityProviderUnavailable("its JWKS has no 'keys' list")
        by_kid: dict[str, VerifyKey] = {}
        without_kid: list[VerifyKey] = []
        for raw in raw_keys:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            if raw.get("kty") not in {"EC", "RSA", "OKP"}:
                continue  # never accept a symmetric ("oct") key from a public document
            try:
                key = JWKRegistry.import_key(raw)
            except (JoseError, ValueError, TypeError) as error:
                logger.warning("OIDC: skipping a JWKS key that does not import (%s)", error)
                continue
            kid = raw.get("kid")
            if isinstance(kid, str) and kid:
                by_kid[kid] = key  # type: ignore[assignment]
            else:
                without_kid.append(key)  # type: ignore[arg-type]
        return cls(by_kid=by_kid, without_kid=tuple(without_kid), generation=generation)

    def find(self, kid: str | None, alg: str) -> VerifyKey | None:
        if kid is not None:
            key = self.by_kid.get(kid)
            return key if key is not None and _key_fits(key, alg) else None
        # No kid in the token: usable only when exactly one published key fits the algorithm.
        fitting = [k for k in (*self.by_kid.values(), *self.without_kid) if _key_fits(k, alg)]
        return fitting[0] if len(fitting) == 1 else None


def _key_fits(key: VerifyKey, alg: str) -> bool:
    if key.key_type != _KEY_TYPE_FOR_ALG.get(alg):
        return False
    declared = key.get("alg")
    return declared is None or declared == alg


class OidcVerifier:
    """Verifies the API's bearer JWTs; one per API process, shared by every request."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        jwks_cache_s: float,
        leeway_s: int = _DEFAULT_LEEWAY_S,
        unknown_kid_refetch_floor_s: float = _DEFAULT_UNKNOWN_KID_REFETCH_FLOOR_S,
        http_timeout_s: float = _DEFAULT_HTTP_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        refused = [a for a in algorithms if a not in _KEY_TYPE_FOR_ALG]
        if refused:
            raise ValueError(
                f"AICO_OIDC_ALGORITHMS may list only asymmetric signature algorithms"
                f" ({', '.join(sorted(_KEY_TYPE_FOR_ALG))}); refusing {refused}"
            )
        if not algorithms:
            raise ValueError("AICO_OIDC_ALGORITHMS is empty: no token could ever be accepted")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.jwks_cache_s = jwks_cache_s
        self.leeway_s = leeway_s
        self.unknown_kid_refetch_floor_s = unknown_kid_refetch_floor_s
        self.http_timeout_s = http_timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._jwks_uri: str | None = None
        self._keys: _KeySet | None = None
        self._fetched_at = float("-inf")
        self._last_unknown_kid_refetch = float("-inf")
        self._last_failure_at = float("-inf")
        self._last_failure_reason = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier:
        if not (settings.oidc_issuer and settings.oidc_audience):
            raise ValueError("OIDC needs both AICO_OIDC_ISSUER and AICO_OIDC_AUDIENCE")
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            algorithms=settings.oidc_algorithms,
            jwks_cache_s=settings.oidc_jwks_cache_s,
        )

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims when it is a valid access token for this API; else Unauthorized."""
        try:
            return await self._verify(token)
        except Unauthorized as error:
            logger.info("OIDC: refused a bearer token: %s", error.message)
            raise

    async def _verify(self, token: str) -> dict[str, Any]:
        header = _read_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthorized(
                f"token algorithm {_short(alg)} is not accepted"
                f" (accepted: {', '.join(self.algorithms)})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("token header 'kid' must be a string")
        key = await self._key_for(kid, alg)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            raise Unauthorized("token signature is invalid") from None
        except JoseError as error:
            raise Unauthorized(f"token could not be verified ({error.error})") from None
        claims = dict(decoded.claims)
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway_s,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise Unauthorized("token has expired") from None
        except MissingClaimError as error:
            raise Unauthorized(f"token is missing required claim(s): {error.claim}") from None
        except ClaimError as error:
            raise Unauthorized(_claim_problem(error.claim, error.description)) from None

    async def _key_for(self, kid: str | None, alg: str) -> VerifyKey:
        keys = await self._current_keys()
        key = keys.find(kid, alg)
        if key is None and kid is not None and kid not in keys.by_kid:
            # An unknown kid: the issuer may have rotated its keys since we fetched them.
            keys = await self._refetch_for_unknown_kid(keys.generation)
            key = keys.find(kid, alg)
        if key is not None:
            return key
        if kid is None:
            raise Unauthorized(
                "token has no 'kid' header and the issuer does not publish exactly one"
                f" {alg} key"
            )
        if kid in keys.by_kid:
            raise Unauthorized(f"the issuer's key {_short(kid)} is not an {alg} key")
        raise Unauthorized(
            f"token was signed with a key the identity provider does not publish (kid {_short(kid)})"
        )

    async def _current_keys(self) -> _KeySet:
        if self._keys is not None and not self._stale():
            return self._keys
        waited_from = self._clock()
        async with self._lock:
            if self._keys is not None and not self._stale():
                return self._keys
            if self._last_failure_at >= waited_from and self._keys is None:
                raise self._unreachable()  # the fetch we queued behind has just failed
            try:
                return await self._refresh()
            except IdentityProviderUnavailable:
                if self._keys is not None:
                    # Keep serving the keys we have rather than lock everyone out; try again later.
                    retry_in = min(self.unknown_kid_refetch_floor_s, self.jwks_cache_s)
                    self._fetched_at = self._clock() - self.jwks_cache_s + retry_in
                    return self._keys
                raise self._unreachable() from None

    async def _refetch_for_unknown_kid(self, seen_generation: int) -> _KeySet:
        async with self._lock:
            assert self._keys is not None
            if self._keys.generation != seen_generation:
                return self._keys  # someone refetched while we waited: look there first
            now = self._clock()
            if now - self._last_unknown_kid_refetch < self.unknown_kid_refetch_floor_s:
                return self._keys
            self._last_unknown_kid_refetch = now
            try:
                return await self._refresh()
            except IdentityProviderUnavailable:
                raise self._unreachable() from None

    def _unreachable(self) -> Unauthorized:
        # The reason names only the issuer's public URLs and the failure, never the token.
        return Unauthorized(
            _UNREACHABLE, details={"issuer": self.issuer, "reason": self._last_failure_reason}
        )

    def _stale(self) -> bool:
        return self._clock() - self._fetched_at >= self.jwks_cache_s

    async def _refresh(self) -> _KeySet:
        """Fetch discovery (once) and the JWKS; the caller holds the lock."""
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout_s) as http:
                if self._jwks_uri is None:
                    self._jwks_uri = self._jwks_uri_from(await self._get_json(http, self.discovery_url))
                document = await self._get_json(http, self._jwks_uri)
        except IdentityProviderUnavailable as error:
            self._failed(str(error))
            logger.warning("OIDC: %s at %s: %s", _UNREACHABLE, self.issuer, error)
            raise
        generation = self._keys.generation + 1 if self._keys is not None else 1
        try:
            keys = _KeySet.from_jwks(document, generation=generation)
        except IdentityProviderUnavailable as error:
            self._failed(f"unusable JWKS at {self._jwks_uri}: {error}")
            logger.warning("OIDC: unusable JWKS from %s: %s", self._jwks_uri, error)
            raise
        self._keys = keys
        self._fetched_at = self._clock()
        logger.info(
            "OIDC: fetched %d signing key(s) from %s", len(keys.by_kid) + len(keys.without_kid),
            self._jwks_uri,
        )
        return keys

    def _failed(self, reason: str) -> None:
        self._last_failure_at = self._clock()
        self._last_failure_reason = reason

    def _jwks_uri_from(self, discovery: Any) -> str:
        if not isinstance(discovery, dict):
            raise IdentityProviderUnavailable("its discovery document is not a JSON object")
        if discovery.get("issuer") != self.issuer:
            raise IdentityProviderUnavailable(
                f"its discovery document names issuer {_short(discovery.get('issuer'))},"
                f" not the configured {self.issuer!r}"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise IdentityProviderUnavailable("its discovery document has no usable 'jwks_uri'")
        return jwks_uri

    @staticmethod
    async def _get_json(http: httpx.AsyncClient, url: str) -> Any:
        try:
            response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise IdentityProviderUnavailable(
                f"GET {url} failed: {type(error).__name__}: {error}"
            ) from None
        if response.status_code != 200:
            raise IdentityProviderUnavailable(f"GET {url} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise IdentityProviderUnavailable(f"GET {url} did not return JSON") from None


def _read_header(token: str) -> dict[str, Any]:
    """The JOSE header, decoded without trusting anything in it yet."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("malformed token: a JWT has three dot-separated parts")
    try:
        encoded = parts[0]
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, TypeError):
        raise Unauthorized("malformed token: its header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise Unauthorized("malformed token: its header is not a JSON object")
    return header


def _claim_problem(claim: str, description: str) -> str:
    if claim == "iss":
        return "token was issued by another issuer"
    if claim == "aud":
        return "token's audience is not this API"
    if claim == "nbf":
        return "token is not valid yet"
    if claim == "iat":
        return "token was issued in the future"
    return f"token claim '{claim}' is invalid: {description}"


def _short(value: object, limit: int = 64) -> str:
    """A header value fit for an error message: quoted and bounded (it is attacker-chosen)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
