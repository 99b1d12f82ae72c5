"""Providers of a session: resolved once when the session is created (flow over organization
over default; required secrets checked, HTTP 412 before anything runs) and pinned in
`sessions.providers` as `{"configs": {capability: config}, "sources": {capability: layer}}`;
opened by the executor when an llm or collect node needs the model."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import asyncpg

from db.provider_configs import list_provider_configs
from flows.document import FlowDocument

log = logging.getLogger("aico.flows.providers")

DEFAULT_LLM: dict[str, Any] = {"kind": "llamacpp"}
# What each channel needs: a chat session never touches speech, so it must not fail (412) for
# want of an STT or TTS secret.
CHANNEL_CAPABILITIES = {"chat": ("llm",), "voice": ("stt", "llm", "tts")}


async def resolve_session_providers(
    conn: asyncpg.Pool | asyncpg.Connection, *, org_id: UUID, document: FlowDocument,
    channel: str = "chat",
) -> dict[str, Any]:
    """The resolved provider configs for a new session; raises MissingSecrets (412)."""
    from providers.resolution import resolve_providers
    from providers.secrets import check_required_secrets

    resolved = resolve_providers(
        flow=document.providers, organization=await list_provider_configs(conn, org_id=org_id),
        capabilities=CHANNEL_CAPABILITIES[channel])
    await check_required_secrets(conn, org_id=org_id, resolved=resolved)
    return resolved.to_json()


async def open_session_llm(pool: asyncpg.Pool, snap: Any, *, open_llm: Any = None,
                           settings: Any = None) -> Any:
    """The session's ChatLLM. `open_llm(config)` overrides how it is built (tests)."""
    config = ((snap["providers"] or {}).get("configs") or {}).get("llm") or dict(DEFAULT_LLM)
    if open_llm is not None:
        return await open_llm(config)
    from providers import runtime
    from providers.resolution import ResolvedProviders
    from providers.secrets import load_secrets

    names = ResolvedProviders({"llm": config}).required_secrets()
    secrets = await load_secrets(pool, org_id=snap["org_id"], names=names, settings=settings)
    return await runtime.open_llm(config, secrets=secrets)
