"""Provider resolution: the flow's choice over the organization's profiles over the server default.

Per capability:
* the **default** layer is the server's (the packaged offline models, overridden by
  `AICO_PROVIDERS`): the operator's, trusted;
* the **organization** layer is its profiles (`providers.profiles`): the profile the flow names,
  else the organization's default profile for that capability. A profile's config that omits
  `kind` or repeats the default's kind is merged over the default (e.g. only a temperature);
* the **flow** layer only picks a profile and tunes harmless fields within its bounds.

The result is validated against each kind's schema and holds secret *names*, never values.
This module is the one place that names the default providers (`BUILTIN_DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aico.errors import ValidationFailed
from aico.settings import Settings, get_settings
from providers.configs import CAPABILITIES
from providers.profiles import (
    FlowProviderChoice,
    ProviderProfile,
    apply_choice,
    validate_flow_providers,
)
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
    # Per capability: the profile used (absent: the server default).
    profiles: dict[str, str] = field(default_factory=dict)
    # Capabilities whose URLs the egress guard must check (a profile not marked internal).
    guarded: tuple[str, ...] = ()
    # Per capability: bounds the runtime enforces on every call (e.g. {"max_tokens": 512}).
    limits: dict[str, dict[str, int]] = field(default_factory=dict)

    def __getitem__(self, capability: str) -> dict[str, Any]:
        return self.configs[capability]

    def required_secrets(self) -> list[str]:
        names: set[str] = set()
        for capability, config in self.configs.items():
            names.update(parse_config(capability, config)[1].required_secrets())
        return sorted(names)

    def to_json(self) -> dict[str, Any]:
        """For the session record: what each capability runs (no secret values)."""
        return {"configs": self.configs, "sources": self.sources, "profiles": self.profiles,
                "guarded": list(self.guarded), "limits": self.limits}

    @classmethod
    def from_json(cls, pinned: Mapping[str, Any] | None) -> ResolvedProviders:
        pinned = pinned or {}
        return cls(configs=dict(pinned.get("configs") or {}),
                   sources=dict(pinned.get("sources") or {}),
                   profiles=dict(pinned.get("profiles") or {}),
                   guarded=tuple(pinned.get("guarded") or ()),
                   limits=dict(pinned.get("limits") or {}))


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
                      profiles: list[ProviderProfile] | None = None,
                      default: Mapping[str, Any] | None = None,
                      capabilities: tuple[str, ...] = CAPABILITIES) -> ResolvedProviders:
    """One validated config per capability; ValidationFailed (422) names the field at fault
    (an unknown profile, a model not allowed, max_tokens over the cap, a forbidden field)."""
    default = server_default_providers() if default is None else default
    choices = validate_flow_providers(dict(flow or {}))
    by_name: dict[tuple[str, str], ProviderProfile] = {
        (p.capability, p.name): p for p in profiles or []}
    org_default: dict[str, ProviderProfile] = {p.capability: p for p in profiles or [] if p.default}
    configs: dict[str, dict[str, Any]] = {}
    sources: dict[str, Layer] = {}
    used: dict[str, str] = {}
    guarded: list[str] = []
    limits: dict[str, dict[str, int]] = {}
    for capability in capabilities:
        choice: FlowProviderChoice | None = choices.get(capability)
        profile = org_default.get(capability)
        if choice is not None and choice.profile is not None:
            profile = by_name.get((capability, choice.profile))
            if profile is None:
                known = sorted(n for c, n in by_name if c == capability)
                raise ValidationFailed(
                    f"providers.{capability}.profile: the organization has no {capability} "
                    f"profile named {choice.profile!r} (has: {', '.join(known) or 'none'})",
                    details=[{"field": f"providers.{capability}.profile",
                              "message": "unknown profile"}])
        lower = default.get(capability)
        if profile is None:
            if lower is None:
                continue
            # The server default is the operator's: a flow may tune it like a profile.
            server = ProviderProfile(name="server-default", capability=capability,
                                     config=dict(lower), internal=True)
            merged = apply_choice(server, dict(lower), choice)
            source = "flow" if choice is not None and choice.tuning() else "default"
        else:
            merged = apply_choice(profile, _merge(lower, profile.config), choice)
            source = "flow" if choice is not None else "organization"
            used[capability] = profile.name
            if not profile.internal:
                guarded.append(capability)
            if profile.max_tokens_cap is not None:
                limits[capability] = {"max_tokens": profile.max_tokens_cap}
        _, parsed = parse_config(capability, merged)
        configs[capability] = parsed.model_dump(mode="json")
        sources[capability] = source  # type: ignore[assignment]
    return ResolvedProviders(configs, sources, used, tuple(guarded), limits)


def validate_profile(profile: ProviderProfile, default: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's config as it would run (merged over the default); 422 names the field."""
    try:
        merged = _merge(default.get(profile.capability), profile.config)
        _, parsed = parse_config(profile.capability, merged)
    except ValidationFailed as err:
        details = [{**d, "field": f"profiles.{profile.name}.config.{d['field']}"}
                   for d in err.details or []]
        raise ValidationFailed(f"profile {profile.name!r}: {err.message}",
                               details=details) from None
    return parsed.model_dump(mode="json")


def _merge(lower: Mapping[str, Any] | None, upper: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(upper, Mapping):
        raise ValidationFailed("a provider config must be a JSON object")
    if lower is None or (upper.get("kind") and upper["kind"] != lower.get("kind")):
        return dict(upper)
    return {**lower, **upper}
