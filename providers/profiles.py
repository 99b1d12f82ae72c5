"""Provider profiles: what an organization admin configures, and what a flow may choose.

A **profile** (organization layer, admin only) is a named, complete provider config for one
capability: kind, base URL, deployment, secret names, default model, plus what flows may change
(`allowed_models`, `max_tokens_cap`) and whether its host is `internal` (then the egress guard
lets a private address through). One profile per capability may be the `default`.

A flow's entry per capability is a **choice**: `{"profile": "main", "model": ..., "voice": ...,
"language": ..., "temperature": ..., "max_tokens": ...}`. Nothing else: a flow naming `base_url`,
`api_key_secret`, `kind` or any other field is refused (422 naming the field), so a flow can
never aim an organization secret at a server of its choosing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aico.errors import ValidationFailed
from providers.configs import Capability
from providers.registry import parse_config

PROFILE_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_PROFILES = 64
# The fields a flow may set; every other field is the profile's (the admin's) to choose.
TUNING_FIELDS = ("model", "voice", "language", "temperature", "max_tokens")


class ProviderProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PROFILE_NAME)
    capability: Capability
    config: dict[str, Any] = Field(
        description="a provider config (kind, base_url, deployment, *_secret names, model...)")
    allowed_models: list[str] = Field(
        default=[], max_length=100,
        description="models (and self-hosted voice files) a flow may pick besides the config's")
    max_tokens_cap: int | None = Field(default=None, gt=0)
    internal: bool = Field(
        default=False, description="the host may be a private address (skips the egress guard)")
    default: bool = Field(default=False, description="used when a flow names no profile")

    def row(self) -> dict[str, Any]:
        return {"capability": self.capability, "name": self.name, "config": self.config,
                "allowed_models": self.allowed_models, "max_tokens_cap": self.max_tokens_cap,
                "internal": self.internal, "is_default": self.default}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProviderProfile:
        return cls(name=row["name"], capability=row["capability"], config=dict(row["config"]),
                   allowed_models=list(row["allowed_models"] or []),
                   max_tokens_cap=row["max_tokens_cap"], internal=row["internal"],
                   default=row["is_default"])


class FlowProviderChoice(BaseModel):
    """What a flow says about one capability: a profile and harmless tuning."""

    model_config = ConfigDict(extra="forbid")

    profile: str | None = Field(default=None, pattern=PROFILE_NAME)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    voice: str | None = Field(default=None, min_length=1, max_length=200)
    language: str | None = Field(default=None, min_length=1, max_length=35)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)

    def tuning(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude={"profile"}).items() if v is not None}


_FORBIDDEN = ("a flow may not set '{field}': base URLs, secrets and provider kinds belong to "
              "the organization's provider profiles; pick one with 'profile'")


def _reaches_out(field: str) -> bool:
    return field.endswith(("_secret", "_url", "_key")) or field in ("base_url", "url", "host")


def check_flow_providers(raw: Any) -> Any:
    """A pydantic before-validator for a flow document's `providers`: refuses (ValidationFailed,
    422, naming the field) anything but a profile name and tuning fields."""
    validate_flow_providers(raw)
    return raw


def validate_flow_providers(raw: Any) -> dict[str, FlowProviderChoice]:
    """A flow's `providers` as choices; ValidationFailed (422) names the offending field."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed("providers must be an object",
                               details=[{"field": "providers", "message": "not an object"}])
    choices: dict[str, FlowProviderChoice] = {}
    for capability, entry in raw.items():
        if isinstance(entry, FlowProviderChoice):
            choices[capability] = entry
            continue
        if isinstance(entry, dict):
            # Secret and URL fields first: they are why the field is refused.
            forbidden = sorted((f for f in entry if f != "profile" and f not in TUNING_FIELDS),
                               key=lambda f: (not _reaches_out(f), f))
            if forbidden:
                fields = [f"providers.{capability}.{f}" for f in forbidden]
                raise ValidationFailed(
                    f"{', '.join(fields)}: " + _FORBIDDEN.format(field=forbidden[0]),
                    details=[{"field": name, "message": _FORBIDDEN.format(field=f)}
                             for name, f in zip(fields, forbidden, strict=True)])
        try:
            choices[capability] = FlowProviderChoice.model_validate(entry)
        except ValidationError as err:
            details = [{"field": ".".join(map(str, ("providers", capability, *e["loc"]))),
                        "message": e["msg"]}
                       for e in err.errors(include_url=False, include_input=False)]
            raise ValidationFailed("invalid flow provider choice", details=details) from None
    return choices


def validate_profiles(profiles: list[ProviderProfile]) -> None:
    """Names unique per capability, one default per capability, each config valid."""
    if len(profiles) > MAX_PROFILES:
        raise ValidationFailed(f"at most {MAX_PROFILES} provider profiles",
                               details=[{"field": "profiles", "message": "too many"}])
    seen: set[tuple[str, str]] = set()
    defaults: set[str] = set()
    for i, p in enumerate(profiles):
        if (p.capability, p.name) in seen:
            raise ValidationFailed(
                f"two {p.capability} profiles are named {p.name!r}",
                details=[{"field": f"profiles.{i}.name", "message": "duplicate name"}])
        seen.add((p.capability, p.name))
        if p.default:
            if p.capability in defaults:
                raise ValidationFailed(
                    f"only one default {p.capability} profile",
                    details=[{"field": f"profiles.{i}.default", "message": "second default"}])
            defaults.add(p.capability)


def apply_choice(profile: ProviderProfile, config: dict[str, Any],
                 choice: FlowProviderChoice | None) -> dict[str, Any]:
    """`config` (the profile's, merged over the server default) with the flow's tuning, each
    field checked against the profile's bounds; ValidationFailed names the field."""
    if choice is None:
        return config
    spec, base = parse_config(profile.capability, config)
    out = dict(config)
    where = f"providers.{profile.capability}"
    for field, value in choice.tuning().items():
        if field not in type(base).model_fields:
            raise ValidationFailed(
                f"{where}.{field}: the {base.kind} provider of profile {profile.name!r} has no "
                f"'{field}'", details=[{"field": f"{where}.{field}", "message": "not tunable"}])
        # A model, or a self-hosted voice (a file on the server), only from the admin's list.
        if (field == "model" or (field == "voice" and spec.self_hosted)) \
                and value != getattr(base, field, None) and value not in profile.allowed_models:
            own = str(getattr(base, field, "") or "")
            allowed = sorted({own, *profile.allowed_models} - {""})
            raise ValidationFailed(
                f"{where}.{field}: {value!r} is not allowed by profile {profile.name!r}"
                f" (allowed: {', '.join(allowed) or 'its own only'})",
                details=[{"field": f"{where}.{field}", "message": f"{field} not allowed"}])
        if field == "max_tokens" and profile.max_tokens_cap is not None \
                and value > profile.max_tokens_cap:
            raise ValidationFailed(
                f"{where}.max_tokens: at most {profile.max_tokens_cap} for profile "
                f"{profile.name!r}",
                details=[{"field": f"{where}.max_tokens", "message": "over the cap"}])
        out[field] = value
    return out
