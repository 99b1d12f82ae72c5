"""Phone numbers, carriers and the toll-fraud guard: what every phone path shares.

    number = PhoneNumber.from_row(row)                   # a `phone_numbers` row
    secrets = await number_secrets(pool, number, settings=settings)  # MissingSecrets → 412
    carrier = carrier_for(number.provider, settings=settings)
    call_ref = await carrier.place_call(number=number, to="+12125550123",
                                        session_id=sid, secrets=secrets)
    policy = await load_dialing_policy(pool, org_id=org)
    to = check_destination(policy, "+12125550123")       # DestinationRefused → 403

**Numbers** are E.164, checked with `phonenumbers` (`normalize_number`). A number's `settings`
are its carrier's; a key ending in `_secret` names an organization secret
(`{"auth_token_secret": "TWILIO_AUTH_TOKEN"}`), and `number_secrets` hands a carrier the
values by those keys (`{"auth_token_secret": "<the token>"}`), never logged.

**Carriers** (`Carrier`): one per provider, registered by name with `register_carrier`. A
carrier's module registers itself when imported; `carrier_for` imports the module named in
`CARRIER_MODULES` the first time its provider is asked for (`flows.twilio_calls` for Twilio),
so a new carrier is one module plus one line there.

**The toll-fraud guard** (`check_destination`) holds every outbound call and transfer: the
destination must be a valid, assigned number (`phonenumbers.is_valid_number`), not premium-rate
or shared-cost unless the organization allows premium, and match one of the organization's
allowed country codes or prefixes (`phone_dialing_policies`; no policy: nothing may be dialled).
`guard_outbound_call` adds the caps on concurrent outbound calls and on calls per minute per
organization (`settings.limits.outbound_calls_*`, counted in PostgreSQL).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import phonenumbers

from aico.errors import AicoError, MissingSecrets, RateLimited, ValidationFailed
from aico.settings import Settings, get_settings
from db import phone_calls as calls_db
from db import phone_numbers as numbers_db
from db.rate_limits import take_rate_limit_slot
from providers.secrets import SECRET_NAME, load_secrets

PROVIDERS = ("livekit", "twilio", "telnyx")
# Where each provider's carrier lives (imported on first use; the module registers itself).
CARRIER_MODULES = {"twilio": "flows.twilio_calls", "telnyx": "flows.telnyx_calls",
                   "livekit": "flows.livekit_calls"}
MAX_SETTINGS = 32
_PREFIX = re.compile(r"^\+?[0-9]{1,15}$")


class DestinationRefused(AicoError):
    """The toll-fraud guard refused a destination (HTTP 403); `reason` says which rule."""

    status, code = 403, "destination_refused"

    def __init__(self, message: str, *, reason: str, to: str) -> None:
        super().__init__(message, details=[{"field": "to", "reason": reason}],
                         reason=reason, to=to)
        self.reason = reason
        self.to = to


class TooManyOutboundCalls(AicoError):
    status, code = 429, "too_many_calls"


class CarrierError(AicoError):
    """The carrier refused or failed a request (HTTP 502), with what it said."""

    status, code = 502, "carrier_error"


# --- numbers -----------------------------------------------------------------------------------

def normalize_number(value: str, *, field_name: str = "number") -> str:
    """`value` as E.164 (`+` and digits), or ValidationFailed (422) naming `field_name`."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not value.strip().startswith("+") \
            or not phonenumbers.is_possible_number(parsed):
        raise ValidationFailed(f"{field_name}: {value!r} is not a phone number in E.164 form"
                               " (+ then the country code and number, e.g. +15551230000)",
                               details=[{"field": field_name, "message": "not E.164"}])
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class CarrierSpec:
    provider: str
    factory: Callable[[Settings], Carrier]
    required_settings: tuple[str, ...] = ()


_CARRIERS: dict[str, CarrierSpec] = {}


def validate_number_settings(provider: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A number's carrier settings, checked: plain values, secret names where a key ends in
    `_secret`, and the keys the provider's carrier requires; ValidationFailed (422) otherwise."""
    if provider not in PROVIDERS:
        raise ValidationFailed(f"provider: one of {', '.join(PROVIDERS)}",
                               details=[{"field": "provider"}])
    if len(settings) > MAX_SETTINGS:
        raise ValidationFailed(f"settings: at most {MAX_SETTINGS} keys",
                               details=[{"field": "settings"}])
    out: dict[str, Any] = {}
    for key, value in settings.items():
        where = f"settings.{key}"
        if not re.match(r"^[a-z][a-z0-9_]{0,63}$", str(key)):
            raise ValidationFailed(f"{where}: keys are lower-case words joined by '_'",
                                   details=[{"field": where}])
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValidationFailed(f"{where}: a string, number or boolean",
                                   details=[{"field": where}])
        if isinstance(value, str) and len(value) > 512:
            raise ValidationFailed(f"{where}: at most 512 characters", details=[{"field": where}])
        if key.endswith("_secret") and not (isinstance(value, str)
                                            and SECRET_NAME.match(value)):
            raise ValidationFailed(f"{where}: the name of an organization secret (not its value)",
                                   details=[{"field": where}])
        out[key] = value
    spec = _spec_or_none(provider)
    missing = [k for k in (spec.required_settings if spec else ()) if not out.get(k)]
    if missing:
        raise ValidationFailed(f"settings: a {provider} number needs {', '.join(missing)}",
                               details=[{"field": f"settings.{k}"} for k in missing])
    return out


@dataclass(frozen=True)
class PhoneNumber:
    """A configured number (a `phone_numbers` row)."""

    id: UUID
    org_id: UUID
    number: str
    flow_id: UUID
    provider: str
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> PhoneNumber:
        return cls(id=row["id"], org_id=row["org_id"], number=row["number"],
                   flow_id=row["flow_id"], provider=row["provider"],
                   settings=dict(row["settings"] or {}))

    def secret_names(self) -> dict[str, str]:
        """Setting key → the organization secret it names."""
        return {k: str(v) for k, v in self.settings.items() if k.endswith("_secret") and v}


async def number_secrets(pool: asyncpg.Pool, number: PhoneNumber, *,
                         settings: Settings | None = None) -> dict[str, str]:
    """The secret values a number's carrier needs, by setting key; MissingSecrets (412) names
    those the organization has not stored."""
    names = number.secret_names()
    values = await load_secrets(pool, org_id=number.org_id, names=list(names.values()),
                                settings=settings)
    missing = [name for name in names.values() if name not in values]
    if missing:
        raise MissingSecrets(missing, message="the number's carrier needs secrets the"
                                              f" organization has not stored: {', '.join(missing)}")
    return {key: values[name] for key, name in names.items()}


# --- carriers ----------------------------------------------------------------------------------

class Carrier(Protocol):
    """One carrier's outbound side: place a call that will reach a flow, move a live call."""

    provider: str

    async def place_call(self, *, number: PhoneNumber, to: str, session_id: UUID,
                         secrets: dict[str, str]) -> str:
        """Dial `to` from `number` for the session; returns the carrier's call id."""

    async def transfer(self, *, number: PhoneNumber, call_ref: str, to: str, warm: bool,
                       summary: str | None, secrets: dict[str, str]) -> None:
        """Move the live call `call_ref` to `to` (checked by the guard before this is called)."""


def register_carrier(provider: str, factory: Callable[[Settings], Carrier], *,
                     required_settings: tuple[str, ...] = ()) -> None:
    """Make `provider`'s carrier available; `factory(settings)` builds it."""
    _CARRIERS[provider] = CarrierSpec(provider, factory, required_settings)


def _spec_or_none(provider: str) -> CarrierSpec | None:
    if provider not in _CARRIERS and provider in CARRIER_MODULES:
        try:
            importlib.import_module(CARRIER_MODULES[provider])
        except ModuleNotFoundError as err:
            if err.name != CARRIER_MODULES[provider]:
                raise
    return _CARRIERS.get(provider)


def carrier_for(provider: str, *, settings: Settings | None = None) -> Carrier:
    spec = _spec_or_none(provider)
    if spec is None:
        raise ValidationFailed(f"provider: no {provider!r} carrier is available in this server",
                               details=[{"field": "provider"}])
    return spec.factory(settings or get_settings())


# --- the toll-fraud guard -----------------------------------------------------------------------

@dataclass(frozen=True)
class DialingPolicy:
    """Where an organization may call: country codes ("1", "44") and E.164 prefixes
    ("+1212"); premium-rate and shared-cost numbers only with `allow_premium`."""

    allowed_country_codes: tuple[str, ...] = ()
    allowed_prefixes: tuple[str, ...] = ()
    allow_premium: bool = False

    @classmethod
    def from_row(cls, row: Any) -> DialingPolicy:
        if row is None:
            return cls()
        return cls(tuple(row["allowed_country_codes"] or ()),
                   tuple(row["allowed_prefixes"] or ()), bool(row["allow_premium"]))


def normalize_dialing_codes(values: list[str], *, field_name: str) -> list[str]:
    """Country codes or prefixes as digits (a leading `+` dropped); 422 names a bad entry."""
    out = []
    for i, value in enumerate(values):
        text = str(value).strip()
        if not _PREFIX.match(text):
            raise ValidationFailed(f"{field_name}[{i}]: {value!r} is not a dialing code"
                                   " (digits, optionally after +)",
                                   details=[{"field": f"{field_name}[{i}]"}])
        out.append(text.lstrip("+"))
    return sorted(set(out))


_PREMIUM = {phonenumbers.PhoneNumberType.PREMIUM_RATE: "premium_rate",
            phonenumbers.PhoneNumberType.SHARED_COST: "shared_cost"}


def check_destination(policy: DialingPolicy, to: str) -> str:
    """`to` in E.164 if the organization may dial it; DestinationRefused (403) says why not."""
    try:
        parsed = phonenumbers.parse(to, None)
    except phonenumbers.NumberParseException:
        raise DestinationRefused(f"to: {to!r} is not a phone number in E.164 form",
                                 reason="not_a_number", to=to) from None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(parsed):
        raise DestinationRefused(f"to: {e164} is not an assigned number range",
                                 reason="unassigned", to=e164)
    kind = _PREMIUM.get(phonenumbers.number_type(parsed))
    if kind is not None and not policy.allow_premium:
        raise DestinationRefused(
            f"to: {e164} is a {kind.replace('_', '-')} number; the organization's dialing"
            " policy does not allow premium destinations (allow_premium)",
            reason=kind, to=e164)
    digits = e164[1:]
    if str(parsed.country_code) in policy.allowed_country_codes \
            or any(digits.startswith(p) for p in policy.allowed_prefixes):
        return e164
    raise DestinationRefused(
        f"to: {e164} (country code +{parsed.country_code}) is not in the organization's"
        " dialing policy (allowed_country_codes, allowed_prefixes: PUT /v1/org/dialing-policy)",
        reason="not_allowed", to=e164)


async def load_dialing_policy(pool: asyncpg.Pool, *, org_id: UUID) -> DialingPolicy:
    return DialingPolicy.from_row(await numbers_db.get_phone_dialing_policy(pool, org_id=org_id))


async def guard_outbound_call(pool: asyncpg.Pool, *, org_id: UUID, to: str,
                              settings: Settings) -> str:
    """The destination checked (403) and the organization's outbound caps (429): the E.164
    number to dial. The per-minute slot is taken only once the destination passed."""
    to = check_destination(await load_dialing_policy(pool, org_id=org_id), to)
    limits = settings.limits
    live = await calls_db.count_phone_calls_live_outbound(pool, org_id=org_id)
    if live >= limits.outbound_calls_per_org:
        raise TooManyOutboundCalls(
            f"the organization has {live} outbound calls in progress, its limit"
            f" (settings.limits.outbound_calls_per_org = {limits.outbound_calls_per_org})",
            details={"limit": "outbound_calls_per_org", "live": live,
                     "cap": limits.outbound_calls_per_org})
    window = await take_rate_limit_slot(pool, org_id=org_id, bucket="outbound_calls",
                                        limit=limits.outbound_calls_per_minute_per_org)
    if not window.allowed:
        raise RateLimited(
            f"rate limit reached: at most {limits.outbound_calls_per_minute_per_org} outbound"
            " calls per minute (settings.limits.outbound_calls_per_minute_per_org,"
            f" AICO_LIMIT_OUTBOUND_CALLS_PER_MINUTE_PER_ORG); retry in {window.retry_after_s} s",
            limit="outbound_calls_per_minute_per_org", retry_after_s=window.retry_after_s)
    return to
