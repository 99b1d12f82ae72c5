"""Every route declares who may call it: a role dependency (ViewerDep, EditorDep, AdminDep,
OwnerDep) or a place in the short list of routes that authorise otherwise. A new route that
does neither fails here, and so does a route whose role drifts from the README's matrix."""

from __future__ import annotations

from fastapi.routing import APIRoute, APIWebSocketRoute

from serve_apps.routes import ROUTERS

# Routes that take no bearer token, and what authorises them instead.
PUBLIC = {
    ("GET", "/healthz"): "liveness for load balancers",
    ("GET", "/v1/auth/config"): "asked before signing in",
    ("POST", "/v1/sessions/{session_id}/events"): "the signed callback URL (aico.signing)",
    ("WS", "/v1/sessions/{session_id}/voice"): "the single-use voice token (aico.signing)",
    ("WS", "/v1/sessions/{session_id}/live"): "a bearer token of the session's organization",
    ("GET", "/widget.js"): "the public web widget script",
    ("OPTIONS", "/v1/widget/{key}/{rest:path}"): "CORS preflight: the widget's allowed origins",
    ("POST", "/v1/widget/{key}/sessions"): "a widget key and an allowed Origin",
    ("GET", "/v1/widget/{key}"): "a widget key and an allowed Origin",
    ("POST", "/v1/widget/{key}/voice"): "a widget key and an allowed Origin",
    ("POST", "/v1/widget/{key}/sessions/{session_id}/messages"): "the visitor token",
    ("GET", "/v1/channels/whatsapp/webhook"): "Meta's handshake: a configured number's verify token",
    ("POST", "/v1/channels/whatsapp/webhook"): "X-Hub-Signature-256 with a number's app secret",
    ("POST", "/v1/channels/twilio/voice"): "X-Twilio-Signature with the number's auth token",
    ("POST", "/v1/channels/twilio/status"): "X-Twilio-Signature with the number's auth token",
    ("WS", "/v1/channels/twilio/media"): "the single-use stream token in Twilio's start message",
    ("POST", "/v1/channels/livekit/webhook"): "LiveKit's JWT (API secret) over the body's SHA-256",
    ("POST", "/v1/channels/telnyx/voice"): "telnyx-signature-ed25519 with the number's public key",
    ("WS", "/v1/channels/telnyx/media"): "the single-use stream token in the stream's URL",
    ("GET", "/metrics"): "AICO_OBSERVABILITY_METRICS_TOKEN, or an admin's token (in the route)",
}

# The README's role matrix, route by route.
ROLES = {
    ("GET", "/v1/auth/me"): "viewer",
    ("GET", "/v1/flows/schema"): "viewer",
    ("GET", "/v1/flows"): "viewer",
    ("GET", "/v1/flows/{flow_id}"): "viewer",
    ("GET", "/v1/flows/{flow_id}/versions"): "viewer",
    ("GET", "/v1/sessions"): "viewer",
    ("GET", "/v1/sessions/{session_id}"): "viewer",
    ("GET", "/v1/sessions/{session_id}/events"): "viewer",
    ("GET", "/v1/providers"): "viewer",
    ("POST", "/v1/flows"): "editor",
    ("PUT", "/v1/flows/{flow_id}"): "editor",
    ("POST", "/v1/flows/{flow_id}/sessions"): "editor",
    ("POST", "/v1/sessions/{session_id}/messages"): "editor",
    ("POST", "/v1/sessions/{session_id}/voice-token"): "editor",
    ("GET", "/v1/org/provider-profiles"): "editor",
    ("GET", "/v1/flows/{flow_id}/missing-secrets"): "editor",
    ("POST", "/v1/flows/{flow_id}/publish"): "admin",
    ("DELETE", "/v1/flows/{flow_id}"): "admin",
    ("GET", "/v1/org/providers"): "admin",
    ("PUT", "/v1/org/providers"): "admin",
    ("GET", "/v1/org/providers/{capability}/{name}/models"): "admin",
    ("GET", "/v1/secrets"): "admin",
    ("PUT", "/v1/secrets/{name}"): "admin",
    ("DELETE", "/v1/secrets/{name}"): "admin",
    ("GET", "/v1/org/egress-allowlist"): "admin",
    ("PUT", "/v1/org/egress-allowlist"): "admin",
    ("GET", "/v1/org/api-clients"): "admin",
    ("POST", "/v1/org/api-clients"): "admin",
    ("DELETE", "/v1/org/api-clients/{client_id}"): "admin",
    ("GET", "/v1/api-keys"): "admin",
    ("POST", "/v1/api-keys"): "admin",
    ("DELETE", "/v1/api-keys/{key_id}"): "admin",
    ("POST", "/v1/webhooks"): "admin",
    ("GET", "/v1/webhooks"): "admin",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): "admin",
    ("POST", "/v1/widgets"): "admin",
    ("GET", "/v1/widgets"): "admin",
    ("DELETE", "/v1/widgets/{widget_id}"): "admin",
    ("GET", "/v1/knowledge-bases"): "viewer",
    ("GET", "/v1/knowledge-bases/{kb_id}"): "viewer",
    ("GET", "/v1/knowledge-bases/{kb_id}/documents/{document_id}"): "viewer",
    ("POST", "/v1/knowledge-bases/{kb_id}/search"): "viewer",
    ("POST", "/v1/knowledge-bases/{kb_id}/documents"): "editor",
    ("DELETE", "/v1/knowledge-bases/{kb_id}/documents/{document_id}"): "editor",
    ("POST", "/v1/knowledge-bases"): "admin",
    ("DELETE", "/v1/knowledge-bases/{kb_id}"): "admin",
    ("GET", "/v1/users/{user_id}/memory"): "editor",
    ("DELETE", "/v1/users/{user_id}/memory"): "admin",
    ("GET", "/v1/org/memory-retention"): "admin",
    ("PUT", "/v1/org/memory-retention"): "admin",
    ("POST", "/v1/channels/whatsapp/numbers"): "admin",
    ("GET", "/v1/channels/whatsapp/numbers"): "admin",
    ("GET", "/v1/channels/whatsapp/numbers/{number_id}"): "admin",
    ("PATCH", "/v1/channels/whatsapp/numbers/{number_id}"): "admin",
    ("DELETE", "/v1/channels/whatsapp/numbers/{number_id}"): "admin",
    ("GET", "/v1/channels/whatsapp/conversations"): "viewer",
    ("POST", "/v1/channels/whatsapp/messages"): "editor",
    ("POST", "/v1/phone-numbers"): "admin",
    ("GET", "/v1/phone-numbers"): "viewer",
    ("GET", "/v1/phone-numbers/{number_id}"): "viewer",
    ("PATCH", "/v1/phone-numbers/{number_id}"): "admin",
    ("DELETE", "/v1/phone-numbers/{number_id}"): "admin",
    ("GET", "/v1/phone-numbers/{number_id}/calls"): "viewer",
    ("GET", "/v1/org/dialing-policy"): "admin",
    ("PUT", "/v1/org/dialing-policy"): "admin",
    ("POST", "/v1/calls"): "editor",
    ("GET", "/v1/calls"): "viewer",
    ("GET", "/v1/calls/{call_id}"): "viewer",
    ("POST", "/v1/channels/livekit/numbers/{number_id}/provision"): "admin",
    ("DELETE", "/v1/channels/livekit/numbers/{number_id}/provision"): "admin",
}


def _dependency_names(dependant, names: list[str]) -> list[str]:
    for sub in dependant.dependencies:
        names.append(getattr(sub.call, "__name__", ""))
        _dependency_names(sub, names)
    return names


def _routes() -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIWebSocketRoute):
                methods = ["WS"]
            elif isinstance(route, APIRoute):
                methods = sorted(route.methods - {"HEAD"})
            else:
                continue
            roles = {n.removeprefix("require_") for n in _dependency_names(route.dependant, [])
                     if n.startswith("require_")}
            for method in methods:
                found[(method, route.path)] = roles
    return found


def test_every_route_declares_its_role_or_how_else_it_is_authorised():
    routes = _routes()
    undeclared = sorted(k for k, roles in routes.items() if not roles and k not in PUBLIC)
    assert undeclared == [], f"routes without a role dependency: {undeclared}"
    assert {k: min(v) if len(v) == 1 else sorted(v) for k, v in routes.items() if v} == ROLES
    assert not [k for k in PUBLIC if routes.get(k)], "a public route grew a role: update PUBLIC"
    assert set(PUBLIC) <= set(routes)
