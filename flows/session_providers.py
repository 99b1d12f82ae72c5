"""Providers of a session: resolved once when the session is created (flow over organization
over default, required secrets checked: HTTP 412 before anything runs) and pinned in
`sessions.providers`; opened by the executor when an llm or collect node needs the model."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import asyncpg

from flows.document import FlowDocument

log = logging.getLogger("aico.flows.providers")

DEFAULT_LLM: dict[str, Any] = {"kind": "llamacpp"}


async def resolve_session_providers(
    conn: asyncpg.Pool | asyncpg.Connection, *, org_id: UUID, document: FlowDocument
) -> dict[str, Any]:
    """The resolved provider configs for a new session, as stored in `sessions.providers`
    (`{"configs": {capability: config}, "sources": {capability: layer}}`); raises
    MissingSecrets (HTTP 412) when the organization lacks a secret they name."""
    from providers import resolution

    organization = await _organization_layer(conn, org_id)
    resolved = resolution.resolve_providers(
        flow=document.providers, organization=organization, capabilities=("stt", "llm", "tts"))
    check = getattr(resolution, "check_required_secrets", None)
    if check is not None:
        await check(conn, org_id=org_id, resolved=resolved)
    return resolved.to_json()


async def _organization_layer(conn: Any, org_id: UUID) -> dict[str, Any] | None:
    """The organization's provider configs (the providers issue owns that table's access)."""
    try:
        from db import provider_configs
    except ImportError:
        return None
    for name in ("get_provider_configs", "list_provider_configs", "organization_providers"):
        read = getattr(provider_configs, name, None)
        if read is not None:
            rows = await read(conn, org_id=org_id)
            if isinstance(rows, dict):
                return rows
            return {r["capability"]: r["config"] for r in rows}
    return None


async def open_session_llm(pool: asyncpg.Pool, snap: Any, *, open_llm: Any = None) -> Any:
    """The session's ChatLLM. `open_llm(config)` overrides how it is built (tests)."""
    config = ((snap["providers"] or {}).get("configs") or {}).get("llm") or dict(DEFAULT_LLM)
    if open_llm is not None:
        return await open_llm(config)
    from providers import runtime

    secrets: dict[str, str] = {}
    try:
        from providers import resolution

        load = getattr(resolution, "load_secrets", None)
        if load is not None:
            secrets = await load(pool, org_id=snap["org_id"],
                                 resolved=resolution.ResolvedProviders({"llm": config}))
    except ImportError:
        pass
    return await runtime.open_llm(config, secrets=secrets)
