"""Typed errors that carry what a caller needs to fix the problem; the API renders each as
`{"error": code, "message": ..., "details": ...}` with its HTTP status."""

from __future__ import annotations

from typing import Any


class AicoError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, details: Any = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.extra = extra

    def headers(self) -> dict[str, str]:
        """HTTP headers the response carries beside the body (e.g. Retry-After)."""
        return {}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message, "details": self.details}
        body.update(self.extra)
        return body


class BadRequest(AicoError):
    status, code = 400, "bad_request"


class Unauthorized(AicoError):
    status, code = 401, "unauthorized"


class Forbidden(AicoError):
    status, code = 403, "forbidden"


class NotFound(AicoError):
    status, code = 404, "not_found"


class Conflict(AicoError):
    status, code = 409, "conflict"


class PayloadTooLarge(AicoError):
    status, code = 413, "payload_too_large"


class ValidationFailed(AicoError):
    """A well-formed request whose content is invalid; `details` lists the fields at fault."""

    status, code = 422, "validation_error"


class MissingSecrets(AicoError):
    """The resolved providers need secrets the organization has not stored (HTTP 412)."""

    status, code = 412, "missing_secrets"

    def __init__(self, names: list[str], *, message: str | None = None) -> None:
        names = sorted(set(names))
        super().__init__(
            message or f"missing required secrets: {', '.join(names)}",
            missing=names,
        )
        self.names = names


class RateLimited(AicoError):
    """A rate limit is spent for now (HTTP 429): `limit` names the setting, `retry_after_s` says
    when the window turns."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, limit: str, retry_after_s: int, details: Any = None) -> None:
        super().__init__(message, details=details, limit=limit, retry_after_s=retry_after_s)
        self.limit = limit
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class BadGateway(AicoError):
    """A server an organization configured answered with nothing usable (HTTP 502)."""

    status, code = 502, "bad_gateway"
