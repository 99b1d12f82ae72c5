"""Per-process API state: settings, the database pool (opened lazily on the serving loop), and
the services routes use, as typed fields a test or an embedding app sets through the
constructor (`ApiState(settings, oidc=..., llm_opener=..., voice_host=...)`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from aico.settings import Settings, get_settings
from db.pool import create_app_pool

if TYPE_CHECKING:
    from actors.host import VoiceHost
    from flows.whatsapp_worker import WhatsAppWorker
    from serve_apps.live import LiveHub
    from serve_apps.oidc import OidcVerifier
    from serve_apps.voice_sweeper import VoiceSweeper

# (request, session row) -> the `voice` field of a created voice session.
VoiceSessionInfo = Callable[[Any, Any], Awaitable[dict[str, Any]]]


@dataclass
class ApiState:
    settings: Settings
    _pool: asyncpg.Pool | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    owns_pool: bool = True
    # The OIDC verifier; built from settings on first use when OIDC is configured.
    oidc: OidcVerifier | None = None
    # How session LLMs are opened (`flows.executor.StepContext.open_llm`); None: from providers.
    llm_opener: Callable[..., Any] | None = None
    # Where voice calls run; built on first call (a Ray actor pool, or in-process).
    voice_host: VoiceHost | None = None
    # Builds the `voice` field of a created voice session; None: the voice routes' own.
    voice_session_info: VoiceSessionInfo | None = None
    # The replica's one LISTEN connection fanning live events out to observers; built on first use.
    live_hub: LiveHub | None = None
    # Closes this replica's voice sessions whose call is gone; started with the first call.
    voice_sweeper: VoiceSweeper | None = None
    # Applies this replica's WhatsApp inbox and sends its outbox; started on first use.
    whatsapp_worker: WhatsAppWorker | None = None
    # The port this replica answers calls on besides the Serve proxy (serve_apps/media_port.py).
    media_port: int | None = None

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    if not (self.settings.database_app_url or self.settings.database_url):
                        raise RuntimeError("AICO_DATABASE_URL is not set for the API process")
                    # As the application role: row-level security applies to every query.
                    self._pool = await create_app_pool(
                        self.settings,
                        min_size=self.settings.db_pool_min,
                        max_size=self.settings.db_pool_max,
                    )
        return self._pool

    def oidc_verifier(self) -> OidcVerifier | None:
        if not self.settings.oidc_enabled:
            return None
        if self.oidc is None:
            from serve_apps.oidc import OidcVerifier

            self.oidc = OidcVerifier.from_settings(self.settings)
        return self.oidc

    async def close(self) -> None:
        # The replica's voice services use the pool: stop them first.
        for service in (self.voice_sweeper, self.live_hub, self.whatsapp_worker):
            if service is not None:
                await service.aclose()
        self.voice_sweeper = self.live_hub = self.whatsapp_worker = None
        if self._pool is not None and self.owns_pool:
            await self._pool.close()
        self._pool = None


def app_state(app: Any) -> ApiState:
    """The app's state, built from this process's AICO_* environment on first use when the app
    was made with `from_environment` (it may have been pickled from another process)."""
    state = app.state.aico
    if state is None:
        state = app.state.aico = ApiState(settings=get_settings())
    return state


def in_serve_replica() -> bool:
    """Whether this process is a Ray Serve replica (not a test's or an embedding app's uvicorn)."""
    try:
        from ray import serve

        serve.get_replica_context()
    except Exception:  # noqa: BLE001 - not in Serve, or Ray not installed
        return False
    return True
