"""The API: a FastAPI app (REST + WebSocket), served as a Ray Serve ingress deployment."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from fastapi import FastAPI
from fastapi.responses import FileResponse

from aico.settings import Settings, get_settings
from serve_apps.body_limit import BodySizeLimit
from serve_apps.errors import install_error_handlers
from serve_apps.routes import ROUTERS
from serve_apps.routes.metrics import start_metrics_push_on_ray
from serve_apps.state import ApiState, VoiceSessionInfo, app_state, in_serve_replica

if TYPE_CHECKING:
    from actors.host import VoiceHost
    from flows.webhook_outbox import WebhookOutbox
    from serve_apps.media_port import MediaPort
    from serve_apps.oidc import OidcVerifier

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "frontend" / "dist"


def create_app(
    settings: Settings | None = None,
    *,
    pool: asyncpg.Pool | None = None,
    from_environment: bool = False,
    oidc: OidcVerifier | None = None,
    llm_opener: Callable[..., Any] | None = None,
    voice_host: VoiceHost | None = None,
    voice_session_info: VoiceSessionInfo | None = None,
) -> FastAPI:
    """The API app. With `from_environment`, settings are read from AICO_* in the serving
    process on first use (a Serve replica), not where the app object was built.

    The services are built from settings when not given; tests and embedding apps pass their
    own (a scripted LLM opener, an in-process voice host, a verifier for a test issuer)."""
    state = None if from_environment else ApiState(
        settings=settings or get_settings(), _pool=pool, owns_pool=pool is None, oidc=oidc,
        llm_opener=llm_opener, voice_host=voice_host, voice_session_info=voice_session_info,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _start_voice_sweeper(app)
        start_metrics_push_on_ray(app_state(app).settings)
        await _start_whatsapp_worker(app)
        outbox = await _start_webhook_outbox(app)
        media = await _start_media_port(app)
        yield
        if media is not None:
            await media.stop()
        if outbox is not None:
            await outbox.stop()
        if app.state.aico is not None:
            await app.state.aico.close()

    app = FastAPI(title="AICO", version="0.1.0", lifespan=lifespan)
    app.state.aico = state
    settings = settings or get_settings()
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    _mount_dashboard(app, settings.dashboard_dir or DEFAULT_DASHBOARD_DIR)
    app.add_middleware(BodySizeLimit, max_bytes=lambda: app_state(app).settings.max_body_bytes)
    return app


async def _start_webhook_outbox(app: FastAPI) -> WebhookOutbox | None:
    """Every replica runs the webhook delivery worker (claims are leased: no double sends)."""
    state = app_state(app)
    if not (state.settings.database_app_url or state.settings.database_url):
        return None
    from flows.webhook_outbox import WebhookOutbox

    try:
        outbox = WebhookOutbox(await state.pool(), state.settings)
    except Exception:  # the API must come up regardless; deliveries wait in the outbox
        logger.exception("could not start the webhook outbox worker")
        return None
    outbox.start()
    return outbox


async def _start_media_port(app: FastAPI) -> MediaPort | None:
    """In a Serve replica, the port that carries calls without the proxy (voice URLs name it)."""
    state = app_state(app)
    if not state.settings.voice.direct_media or not in_serve_replica():
        return None
    from serve_apps.media_port import MediaPort

    try:
        media = await MediaPort.start(app, state.settings)
    except Exception:  # calls still work through the proxy
        logger.exception("could not open the media port: voice calls go through the proxy")
        return None
    state.media_port = media.port
    return media


async def _start_voice_sweeper(app: FastAPI) -> None:
    """Every replica sweeps voice sessions whose call lost its host from the start, not only
    once a voice request reaches it (a restarted replica closes what its predecessor left)."""
    state = app_state(app)
    if not (state.settings.database_app_url or state.settings.database_url):
        return
    from serve_apps.routes.voice import start_voice_sweeper

    try:
        start_voice_sweeper(state, await state.pool())
    except Exception:  # the first voice request starts it; the API must come up regardless
        logger.exception("could not start the voice session sweeper")


async def _start_whatsapp_worker(app: FastAPI) -> None:
    """Every replica applies the WhatsApp inbox from the start: what a stopped replica
    acknowledged but never applied is answered without waiting for the next webhook."""
    from serve_apps.routes.whatsapp import start_whatsapp_worker

    try:
        await start_whatsapp_worker(app_state(app))
    except Exception:  # the first webhook starts it; the API must come up regardless
        logger.exception("could not start the WhatsApp worker")


def _mount_dashboard(app: FastAPI, dist: Path) -> None:
    """Serve the built dashboard at `/`, with client-side routes falling back to index.html."""
    index = dist / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard_index() -> FileResponse:
        if not index.exists():
            from aico.errors import NotFound

            raise NotFound("the dashboard is not built (run `npm run build` in frontend/)")
        return FileResponse(index)

    @app.get("/{path:path}", include_in_schema=False)
    async def dashboard_asset(path: str) -> FileResponse:
        from aico.errors import NotFound

        if path.startswith(("v1/", "healthz")) or not index.exists():
            raise NotFound(f"no route for /{path}")
        candidate = (dist / path).resolve()
        if candidate.is_file() and dist.resolve() in candidate.parents:
            return FileResponse(candidate)
        return FileResponse(index)
