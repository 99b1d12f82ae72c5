"""The models an `openai-compatible` profile's server offers, for an admin filling in the
profile's model and allowed models: Ollama's `GET /api/tags`, else the OpenAI-style
`GET {base_url}/models` (vLLM, llama.cpp server, Ollama too).

The request goes through the egress guard unless the admin marked the profile `internal`, and
carries the profile's key secret when it names one. Only model names come back, never a body.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from aico.egress import EgressResponse
from aico.errors import BadGateway, NotFound, ValidationFailed
from flows.session_providers import org_profiles
from flows.sessions import check_profile_egress
from providers.configs import Capability
from providers.secrets import load_secrets
from serve_apps.deps import AdminDep, PoolDep, SettingsDep

router = APIRouter(tags=["providers"])

LISTABLE_KINDS = ("openai-compatible",)
TIMEOUT_S = 5.0
MAX_BYTES = 512 * 1024
MAX_MODELS = 500


def _names(response: EgressResponse, *, key: str, field: str) -> list[str] | None:
    if response.status != 200:
        return None
    try:
        items = json.loads(response.body).get(key)
    except (ValueError, AttributeError):
        return None
    if not isinstance(items, list):
        return None
    names = [str(m[field]) for m in items if isinstance(m, dict) and m.get(field)]
    return names[:MAX_MODELS]


@router.get("/v1/org/providers/{capability}/{name}/models")
async def list_profile_models(capability: Capability, name: str, principal: AdminDep,
                              pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    profile = next((p for p in await org_profiles(pool, org_id=principal.org_id)
                    if p.capability == capability and p.name == name), None)
    if profile is None:
        raise NotFound(f"no {capability} provider profile named {name!r}")
    config = profile.config
    if config.get("kind") not in LISTABLE_KINDS or not config.get("base_url"):
        raise ValidationFailed(
            f"models can be listed for {', '.join(LISTABLE_KINDS)} profiles only",
            details=[{"field": "config.kind", "message": f"is {config.get('kind')!r}"}])
    base = str(config["base_url"]).rstrip("/")
    guard: Any = _Unguarded() if profile.internal else \
        await check_profile_egress(pool, org_id=principal.org_id, config=config)
    headers = {}
    if secret := config.get("api_key_secret"):
        values = await load_secrets(pool, org_id=principal.org_id, names=[secret],
                                    settings=settings)
        if secret in values:
            headers["Authorization"] = f"Bearer {values[secret]}"

    root = base.removesuffix("/v1")
    tried: list[str] = []
    for url, source, key, field in ((f"{root}/api/tags", "ollama", "models", "name"),
                                    (f"{base}/models", "openai", "data", "id")):
        try:
            response = await guard.request("GET", url, headers=headers, timeout_s=TIMEOUT_S,
                                           max_response_bytes=MAX_BYTES)
        except Exception as err:  # refused, too large, timed out, no connection: say which
            if getattr(err, "status", None) == 403:
                raise
            tried.append(f"{url}: {type(err).__name__}")
            continue
        names = _names(response, key=key, field=field)
        if names is not None:
            return {"source": source, "items": [{"id": n} for n in names]}
        tried.append(f"{url}: HTTP {response.status}")
    raise BadGateway(f"the {name!r} profile's server listed no models ({'; '.join(tried)})")


class _Unguarded:
    """An `internal` profile's host is private by design: same bounds, no address check."""

    async def request(self, method: str, url: str, **kwargs: Any) -> EgressResponse:
        import asyncio

        import httpx

        timeout_s = kwargs.pop("timeout_s")
        limit = kwargs.pop("max_response_bytes")
        async with asyncio.timeout(timeout_s), httpx.AsyncClient(
                timeout=timeout_s, trust_env=False) as client, \
                client.stream(method, url, **kwargs) as response:
            body = bytearray()
            async for chunk in response.aiter_raw():
                body.extend(chunk)
                if len(body) > limit:
                    raise BadGateway(f"{url} answered more than {limit} bytes")
            return EgressResponse(status=response.status_code, headers=response.headers,
                                  body=bytes(body), url=str(response.url))
