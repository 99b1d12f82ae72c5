"""The `openai` client as every OpenAI-shaped adapter uses it: retries off (the base classes
own them), base URL from config, its connections through the egress guard when the session
service opens the provider under `providers.egress_clients.egress_guarded(guard)`, and its
exceptions mapped to typed provider errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.egress_clients import current_guard, httpx_client
from providers.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)


def make_client(*, base_url: str, api_key_secret: str | None, secrets: Mapping[str, str],
                timeout_s: float) -> Any:
    import openai

    api_key = secrets[api_key_secret] if api_key_secret else "unused"
    guard = current_guard()
    http_client = httpx_client(guard, timeout=timeout_s) if guard is not None else None
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                              timeout=timeout_s, http_client=http_client)


def provider_error(err: Exception, *, provider: str) -> ProviderError:
    """The typed error for an exception raised by the openai client."""
    import openai

    if isinstance(err, openai.APITimeoutError):
        return ProviderTimeout(f"{provider}: request timed out", provider=provider)
    if isinstance(err, openai.APIConnectionError):
        return ProviderUnavailable(f"{provider}: connection failed ({_cause(err)})",
                                   provider=provider)
    if isinstance(err, openai.APIStatusError):
        return error_for_status(err.status_code, f"{provider}: HTTP {err.status_code}: "
                                f"{_message(err)}", provider=provider)
    if isinstance(err, openai.APIError):
        # A stream that broke off mid-way, or an error event inside the stream.
        return ProviderUnavailable(f"{provider}: {err.message}", provider=provider)
    return ProviderError(f"{provider}: {type(err).__name__}: {err}", provider=provider)


def _message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(inner, str):
            return inner[:300]
    return str(getattr(err, "message", "")).split(" - ")[0][:300]


def _cause(err: Exception) -> str:
    cause = err.__cause__ or err.__context__
    return type(cause).__name__ if cause else "no detail"
