"""The session service: the one way every channel starts a session and opens its providers.

    new = await create_session(pool, settings=settings, org_id=org, flow_id=flow,
                               channel="voice", variables={...}, user_id="u1")
    # NotFound (no flow / nothing published), ValidationFailed (a bad provider choice),
    # MissingSecrets (412, naming them) or EgressRefused (403): before anything is stored.

    stt, tts = await open_session_speech(pool, snap, settings=settings)   # voice channels
    llm = await open_session_llm(pool, snap, settings=settings)           # the executor
    point = await resume_point(pool, session_id)                          # a new voice actor

Chat, voice and every channel to come (phone, WhatsApp, HTTP triggers) call `create_session`;
a channel adds only its transport. Providers are resolved once, at creation (flow choice over
the organization's profiles over the server default, `providers.resolution`), and pinned in
`sessions.providers`; opening them here is the one place that loads the organization's secrets
and aims them, through the egress guard unless an admin marked the profile internal.

Every session's provider usage (LLM tokens, STT audio seconds, TTS characters) lands in one
store, `sessions.metrics.usage` (`db.session_metrics`), whatever the channel, in one shape
(`provider_usage`): the LLM's after each call (`SessionLLM`), the speech providers' as a voice
call's turns finish.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg

from aico.errors import MissingSecrets, NotFound
from aico.settings import Settings, get_settings
from db import flows as flows_db
from db import provider_profiles as profiles_db
from db import session_metrics
from db import sessions as sessions_db
from flows.document import FlowDocument
from providers.profiles import ProviderProfile
from providers.registry import parse_config
from providers.resolution import (
    BUILTIN_DEFAULTS,
    ResolvedProviders,
    resolve_providers,
    server_default_providers,
)
from providers.secrets import check_required_secrets

log = logging.getLogger("aico.flows.sessions")

# What each channel needs: a chat session never touches speech, so it must not fail (412) for
# want of an STT or TTS secret.
CHANNEL_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "chat": ("llm",), "voice": ("stt", "llm", "tts"), "whatsapp": ("stt", "llm"),
    "phone": ("stt", "llm", "tts"),
}
LLMOpener = Callable[[dict[str, Any]], Awaitable[Any]]  # provider config -> ChatLLM


@dataclass(frozen=True)
class NewSession:
    """A session just created (and not yet run)."""

    id: UUID
    org_id: UUID
    flow_id: UUID
    flow_version_id: UUID
    flow_version: int
    channel: str
    status: str
    document: FlowDocument
    providers: ResolvedProviders


@dataclass(frozen=True)
class ResumePoint:
    """Where a (new or restarted) voice actor picks a session up.

    `start`: nothing has run yet (send `session.started`); `ended`: the session is over;
    `llm_reply`: it died mid-reply (`llm_token`: confirm that reply as not heard);
    `listening`: it waits for the caller; `running`: anything else (wait for the next event).
    """

    kind: Literal["start", "ended", "llm_reply", "listening", "running"]
    session_id: UUID
    org_id: UUID
    status: str
    variables: dict[str, Any]
    providers: dict[str, Any]
    llm_token: str | None = None


# --- creating a session --------------------------------------------------------------------

async def load_published_flow(pool: asyncpg.Pool, *, org_id: UUID,
                              flow_id: UUID) -> tuple[Any, FlowDocument]:
    """(the latest published version row, its document); NotFound names what is missing."""
    from flows.executor import flow_document

    if await flows_db.get_flow(pool, org_id=org_id, flow_id=flow_id) is None:
        raise NotFound(f"flow {flow_id} not found")
    version = await flows_db.get_flow_version(pool, org_id=org_id, flow_id=flow_id)
    if version is None:
        raise NotFound(f"flow {flow_id} has no published version: publish it first")
    return version, await flow_document(pool, version["id"])


async def resolve_session_providers(pool: asyncpg.Pool | asyncpg.Connection, *, org_id: UUID,
                                    document: FlowDocument, channel: str,
                                    settings: Settings | None = None) -> ResolvedProviders:
    """The providers a new session of `document` on `channel` will run; raises
    ValidationFailed (422), MissingSecrets (412) or EgressRefused (403)."""
    settings = settings or get_settings()
    rows = await profiles_db.list_provider_profiles(pool, org_id=org_id)
    resolved = resolve_providers(
        flow=_flow_choices(document), profiles=[ProviderProfile.from_row(r) for r in rows],
        default=server_default_providers(settings),
        capabilities=CHANNEL_CAPABILITIES.get(channel, CHANNEL_CAPABILITIES["voice"]))
    await check_required_secrets(pool, org_id=org_id, resolved=resolved)
    for capability in resolved.guarded:
        await check_profile_egress(pool, org_id=org_id, config=resolved[capability])
    return resolved


async def create_session(
    pool: asyncpg.Pool, *, settings: Settings, org_id: UUID, flow_id: UUID, channel: str,
    variables: Mapping[str, Any] | None = None, user_id: str | None = None,
    user_cluster: str | None = None,
) -> NewSession:
    """Load the published flow, resolve and check its providers, store the session."""
    version, document = await load_published_flow(pool, org_id=org_id, flow_id=flow_id)
    providers = await resolve_session_providers(pool, org_id=org_id, document=document,
                                                channel=channel, settings=settings)
    row = await sessions_db.insert_session(
        pool, org_id=org_id, flow_id=flow_id, flow_version_id=version["id"], channel=channel,
        variables={**document.initial_variables(), **(variables or {})}, user_id=user_id,
        user_cluster=user_cluster, providers=providers.to_json())
    assert row is not None  # a fresh id never conflicts
    return NewSession(id=row["id"], org_id=org_id, flow_id=flow_id,
                      flow_version_id=version["id"], flow_version=version["version"],
                      channel=channel, status=row["status"], document=document,
                      providers=providers)


async def resume_point(pool: asyncpg.Pool, session_id: UUID) -> ResumePoint:
    """Where a voice actor attaching to `session_id` carries on; NotFound if there is none."""
    snap = await sessions_db.get_session_for_step(pool, session_id=session_id,
                                                  event_id="voice:attach")
    if snap is None:
        raise NotFound(f"session {session_id} not found")
    state = dict(snap["state"] or {})
    wait = state.get("wait") or {}
    kind: Any
    token = None
    if snap["status"] in ("ended", "failed"):
        kind = "ended"
    elif not state.get("started"):
        kind = "start"
    elif wait.get("kind") == "llm":
        kind, token = "llm_reply", wait.get("token")
    elif wait.get("kind") in ("listen", "collect"):
        kind = "listening"
    else:
        kind = "running"
    return ResumePoint(kind=kind, session_id=snap["id"], org_id=snap["org_id"],
                       status=snap["status"], variables=dict(snap["variables"] or {}),
                       providers=dict(snap["providers"] or {}), llm_token=token)


def _flow_choices(document: FlowDocument) -> dict[str, Any]:
    return {cap: (c.model_dump(exclude_none=True) if hasattr(c, "model_dump") else dict(c))
            for cap, c in (document.providers or {}).items()}


# --- opening a session's providers ---------------------------------------------------------

def pinned_config(pinned: Mapping[str, Any] | None, capability: str,
                  settings: Settings | None = None) -> dict[str, Any]:
    """The session's config for `capability`, else the server default for it."""
    config = ((pinned or {}).get("configs") or {}).get(capability)
    if config:
        return dict(config)
    return dict(server_default_providers(settings)[capability])


async def open_provider(capability: str, pool: asyncpg.Pool | None, *, org_id: UUID | None,
                        pinned: Mapping[str, Any] | None,
                        settings: Settings | None = None) -> Any:
    """Open one of a session's providers with the organization secrets its config names,
    its URL checked and its connections pinned by the egress guard where the profile asks."""
    from providers import egress_clients, runtime

    config = pinned_config(pinned, capability, settings)
    names = parse_config(capability, config)[1].required_secrets()
    secrets: dict[str, str] = {}
    if names:
        if pool is None or org_id is None:
            raise MissingSecrets(names)
        from providers.secrets import load_secrets

        secrets = await load_secrets(pool, org_id=org_id, names=names, settings=settings)
    guard = None
    if capability in ((pinned or {}).get("guarded") or ()):
        guard = await check_profile_egress(pool, org_id=org_id, config=config)
    opener = {"stt": runtime.open_stt, "llm": runtime.open_llm, "tts": runtime.open_tts,
              "embeddings": runtime.open_embeddings}[capability]
    with egress_clients.egress_guarded(guard):
        return await opener(config, secrets=secrets)


async def open_session_speech(pool: asyncpg.Pool | None, snap: Mapping[str, Any], *,
                              settings: Settings | None = None) -> tuple[Any, Any]:
    """(STT, TTS) of a voice session (`snap`: its row, with `org_id` and `providers`)."""
    pinned = dict(snap["providers"] or {})
    org_id = snap["org_id"]
    stt = await open_provider("stt", pool, org_id=org_id, pinned=pinned, settings=settings)
    tts = await open_provider("tts", pool, org_id=org_id, pinned=pinned, settings=settings)
    return stt, tts


async def open_session_llm(pool: asyncpg.Pool, snap: Mapping[str, Any], *,
                           open_llm: LLMOpener | None = None, settings: Settings | None = None,
                           on_start: Callable[[float], None] | None = None) -> SessionLLM:
    """The session's ChatLLM, metered into the session's usage and held to its profile's caps.
    `open_llm(config)` overrides how the model itself is built (tests, embedding apps);
    `on_start(monotonic)` hears when each call starts (voice turn metrics)."""
    pinned = dict(snap["providers"] or {})
    if open_llm is not None:
        llm = await open_llm(pinned_config(pinned, "llm", settings))
    else:
        llm = await open_provider("llm", pool, org_id=snap["org_id"], pinned=pinned,
                                  settings=settings)
    limits = ((pinned.get("limits") or {}).get("llm") or {})
    return SessionLLM(llm, pool=pool, session_id=snap["id"], kind=_kind(llm, pinned),
                      max_tokens_cap=limits.get("max_tokens"), on_start=on_start)


def default_configs() -> dict[str, dict[str, Any]]:
    """The packaged offline models (what a voice actor warms before any session exists)."""
    return {cap: dict(cfg) for cap, cfg in BUILTIN_DEFAULTS.items()}


async def check_profile_egress(pool: Any, *, org_id: UUID | None, config: Mapping[str, Any]) -> Any:
    """The egress guard for a profile's URL (refused: EgressRefused, 403), or None when the
    config has no URL field. The organization's egress allow-list applies."""
    urls = [str(v) for k, v in config.items() if (k == "base_url" or k.endswith("_url")) and v]
    if not urls:
        return None
    from aico.egress import EgressGuard

    allowlist: list[str] = []
    if pool is not None and org_id is not None:
        from db.egress_allowlist import get_egress_allowlist

        allowlist = await get_egress_allowlist(pool, org_id=org_id)
    guard = EgressGuard(allowlist=allowlist)
    for url in urls:
        # WebSocket providers (Deepgram, ElevenLabs) are checked by their http(s) form.
        await guard.check_url(url.replace("wss://", "https://", 1).replace("ws://", "http://", 1))
    return guard


def _kind(llm: Any, pinned: Mapping[str, Any]) -> str:
    return str(getattr(llm, "kind", "") or ((pinned.get("configs") or {}).get("llm") or {})
               .get("kind", "llm"))


# --- usage -----------------------------------------------------------------------------------

class SessionLLM:
    """A session's ChatLLM: each call's token usage is added to the session's usage, the
    profile's max_tokens cap holds whatever a node asks, and call starts are reported."""

    def __init__(self, llm: Any, *, pool: asyncpg.Pool, session_id: UUID, kind: str,
                 max_tokens_cap: int | None = None,
                 on_start: Callable[[float], None] | None = None) -> None:
        self._llm = llm
        self._pool = pool
        self._session_id = session_id
        self.kind = kind
        self._cap = max_tokens_cap
        self._on_start = on_start

    def _bounded(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # A node's own max_tokens is held to the cap; without one the config's (checked) applies.
        asked = kwargs.get("max_tokens")
        if self._cap is not None and asked is not None:
            kwargs["max_tokens"] = min(int(asked), self._cap)
        return kwargs

    async def chat(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if self._on_start is not None:
            self._on_start(time.monotonic())
        before = _llm_totals(self._llm)
        async for chunk in self._llm.chat(*args, **self._bounded(kwargs)):
            yield chunk
        await self._record(before)

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        if self._on_start is not None:
            self._on_start(time.monotonic())
        before = _llm_totals(self._llm)
        result = await self._llm.complete(*args, **self._bounded(kwargs))
        await self._record(before)
        return result

    async def _record(self, before: dict[str, int]) -> None:
        after = _llm_totals(self._llm)
        delta: dict[str, int | float] = {k: after[k] - before.get(k, 0) for k in after}
        if not any(delta.values()):
            delta["requests"] = 1  # a model that keeps no totals still answered once
        try:
            await session_metrics.add_sessions_usage(
                self._pool, session_id=self._session_id, capability="llm", kind=self.kind,
                counts=delta)
        except Exception:  # usage must never break a conversation
            log.exception("session %s: could not record LLM usage", self._session_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def provider_usage(provider: Any) -> dict[str, Any]:
    """A provider object's usage totals as a session stores them (`sessions.metrics.usage`):
    its kind and every counter of its totals (requests, tokens, audio seconds, characters)."""
    out: dict[str, Any] = {"kind": getattr(provider, "kind", "") or ""}
    totals = getattr(provider, "usage", None)
    if totals is not None and dataclasses.is_dataclass(totals):
        for f in dataclasses.fields(totals):
            value = getattr(totals, f.name)
            out[f.name] = round(value, 2) if isinstance(value, float) else value
    return out


def _llm_totals(llm: Any) -> dict[str, int]:
    usage = getattr(llm, "usage", None)
    return {k: int(getattr(usage, k, 0) or 0)
            for k in ("requests", "prompt_tokens", "completion_tokens")}
