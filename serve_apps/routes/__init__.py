"""Every API router, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

from serve_apps.routes import (
    api_clients,
    auth_config,
    calls,
    chat,
    egress,
    flows,
    health,
    knowledge,
    livekit_webhook,
    memory,
    metrics,
    phone_numbers,
    provider_models,
    providers,
    secrets,
    sessions,
    telnyx,
    twilio,
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
    widgets.visitor_router,
    knowledge.router,
    memory.router,
    memory.retention_router,
    whatsapp.router,
    livekit_webhook.router,
    phone_numbers.router,
    calls.router,
    twilio.router,
    telnyx.router,
    metrics.router,
]
