"""Every API router, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

from serve_apps.routes import (
    api_clients,
    auth_config,
    chat,
    egress,
    flows,
    health,
    knowledge,
    memory,
    metrics,
    provider_models,
    providers,
    secrets,
    sessions,
    voice,
    webhooks,
    whatsapp,
    widgets,
)

ROUTERS: list[APIRouter] = [
    health.router,
    auth_config.router,
    flows.router,
    sessions.router,
    chat.router,
    providers.router,
    provider_models.router,
    secrets.router,
    voice.router,
    egress.router,
    api_clients.router,
    api_clients.keys_router,
    webhooks.router,
    widgets.router,
    knowledge.router,
    memory.router,
    memory.retention_router,
    whatsapp.router,
    metrics.router,
]
