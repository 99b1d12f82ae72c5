"""Three-layer provider resolution: flow over organization over default (server config).

Per capability, the highest layer that says anything wins. A layer may name a new `kind`
(then its config replaces the lower one) or omit `kind` / repeat the same kind (then its
fields override the lower layer's, e.g. a flow that only lowers the LLM temperature).
The result is validated against each kind's schema; it holds secret *names*, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aico.errors import ValidationFailed
from aico.settings import Settings, get_settings
from providers.configs import CAPABILITIES
from providers.registry import parse_config

Layer = Literal["flow", "organization", "default"]

# What runs with no configuration at all: the offline models that ship in packages.
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "stt": {"kind": "faster-whisper"},
    "llm": {"kind": "llamacpp"},
    "tts": {"kind": "piper"},
    "embeddings": {"kind": "minilm"},
}


@dataclass(frozen=True)
class ResolvedProviders:
    configs: dict[str, dict[str, Any]]
    sources: dict[str, Layer] = field(default_factory=dict)

    def __getitem__(self, capability: str) -> dict[str, Any]:
        return self.configs[capability]

    def required_secrets(self) -> list[str]:
        names: set[str] = set()
        for capability, config in self.configs.items():
            names.update(parse_config(capability, config)[1].required_secrets())
        return sorted(names)

    def to_json(self) -> dict[str, Any]:
        """For the session record: configs and where each came from (no secret values)."""
        return {"configs": self.configs, "sources": self.sources}


def server_default_providers(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """The default layer: built-in offline models, overridden per capability by the server
    config (`settings.default_providers.defaults`, from `AICO_PROVIDERS` as JSON, e.g.
    `{"llm": {"kind": "openai-compatible", "base_url": "http://vllm:8000/v1", ...}}`)."""
    configured = (settings or get_settings()).default_providers.defaults
    defaults = {cap: dict(cfg) for cap, cfg in BUILTIN_DEFAULTS.items()}
    for capability, config in (configured or {}).items():
        defaults[capability] = _merge(defaults.get(capability), config)
    return defaults


def resolve_providers(*, flow: Mapping[str, Any] | None = None,
                      organization: Mapping[str, Any] | None = None,
                      default: Mapping[str, Any] | None = None,
                      capabilities: tuple[str, ...] = CAPABILITIES) -> ResolvedProviders:
    """Merge the three layers into one validated config per capability."""
    default = server_default_providers() if default is None else default
    configs: dict[str, dict[str, Any]] = {}
    sources: dict[str, Layer] = {}
    for capability in capabilities:
        merged: dict[str, Any] | None = None
        source: Layer | None = None
        for layer, values in (("default", default), ("organization", organization),
                              ("flow", flow)):
            config = (values or {}).get(capability)
            if config:
                merged = _merge(merged, config)
                source = layer  # type: ignore[assignment]
        if merged is None:
            continue
        _, parsed = parse_config(capability, merged)
        configs[capability] = parsed.model_dump(mode="json")
        sources[capability] = source  # type: ignore[assignment]
    return ResolvedProviders(configs, sources)


def _merge(lower: Mapping[str, Any] | None, upper: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(upper, Mapping):
        raise ValidationFailed("a provider config must be a JSON object")
    if lower is None or (upper.get("kind") and upper["kind"] != lower.get("kind")):
        return dict(upper)
    return {**lower, **upper}


async def resolve_session_providers(conn: Any, *, org_id: Any,
                                    flow: Mapping[str, Any] | None = None,
                                    settings: Settings | None = None) -> ResolvedProviders:
    """Resolve a session's providers: `flow` (the flow document's providers) over the
    organization's stored layer over the server defaults."""
    from db.provider_configs import list_provider_configs

    organization = await list_provider_configs(conn, org_id=org_id)
    return resolve_providers(flow=flow, organization=organization,
                             default=server_default_providers(settings))
