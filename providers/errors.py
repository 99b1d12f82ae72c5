"""Typed provider errors: what failed, at which provider, and whether a retry may help.

Messages never carry secret values: adapters build them from status codes and the provider's
own error text, never from request headers.
"""

from __future__ import annotations

from aico.errors import AicoError


class ProviderError(AicoError):
    """A provider call failed. `retryable` says whether the base class may try again."""

    status, code = 502, "provider_error"
    retryable: bool = False

    def __init__(self, message: str, *, provider: str = "", retryable: bool | None = None,
                 status_code: int | None = None) -> None:
        super().__init__(message, provider=provider)
        self.provider = provider
        self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (HTTP 401/403): fix the secret, do not retry."""

    code = "provider_auth_failed"
    retryable = False


class ProviderRateLimited(ProviderError):
    """HTTP 429: back off and retry."""

    code = "provider_rate_limited"
    retryable = True


class ProviderUnavailable(ProviderError):
    """HTTP 5xx, a refused connection or a dropped socket: retry."""

    code = "provider_unavailable"
    retryable = True


class ProviderTimeout(ProviderError):
    """No answer within the configured timeout."""

    status, code = 504, "provider_timeout"
    retryable = True


class ProviderConfigError(ProviderError):
    """The provider config is invalid or names something that does not exist here."""

    status, code = 422, "provider_config_invalid"
    retryable = False


def error_for_status(status_code: int, message: str, *, provider: str) -> ProviderError:
    """Map an HTTP status from a provider to the typed error the base classes understand."""
    if status_code in (401, 403):
        return ProviderAuthError(message, provider=provider, status_code=status_code)
    if status_code == 429:
        return ProviderRateLimited(message, provider=provider, status_code=status_code)
    if status_code >= 500 or status_code == 408:
        return ProviderUnavailable(message, provider=provider, status_code=status_code)
    return ProviderError(message, provider=provider, status_code=status_code)
