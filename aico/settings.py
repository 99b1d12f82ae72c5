"""Server settings: one pydantic settings class read from AICO_* environment variables.

`Settings` is read once per process (`get_settings()`) and passed down; nothing else reads
`os.environ` for an AICO_* value. Its sections keep their own environment prefixes:

| section | environment |
| --- | --- |
| `voice` | `AICO_VOICE_*` (turn taking defaults, actor pool, voice tokens) |
| `serving` | `AICO_MODELS` (auto, serve, inprocess), `AICO_MODEL_DEPLOYMENTS` (JSON) |
| `default_providers` | `AICO_PROVIDERS` (JSON: the server's default provider per capability) |
| `security` | `AICO_SECRET_KEY`, `AICO_SIGNING_KEY` |
| `limits` | `AICO_LIMIT_*` (flow bounds, rate limits, caps) |
| `observability` | `AICO_OBSERVABILITY_*` (the /metrics scrape token, traces exporter) |
| `telephony` | `AICO_TELEPHONY_*` (carrier REST base URLs, phone stream tokens) |
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A JSON object per capability, parsed by `_json_from_env` so a bad value names its variable.
PerCapability = Annotated[dict[str, dict[str, Any]], NoDecode]


def _json_from_env(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return {}
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON: {err.msg}") from None


class VoiceSettings(BaseSettings):
    """Server-wide voice settings (`AICO_VOICE_*`)."""

    model_config = SettingsConfigDict(env_prefix="AICO_VOICE_", extra="ignore")

    pool_size: int = Field(2, ge=0, le=256, description="call slots kept warm per node")
    max_restarts: int = Field(3, ge=0)
    calls_per_actor: int = Field(50, ge=1, description="an actor retires after this many calls")
    calls_per_process: int = Field(
        2, ge=1, le=16, description="calls one session actor process carries at once: more "
        "share its ≈145 MiB of imports and models, but its crash drops them all (they resume)")
    # Placement on Ray (actors/call_placement.py): each call actor holds `calls_per_process`
    # units of this node resource where the cluster declares it (one per call); `aico up` gives
    # its local Ray `calls_per_node`.
    call_resource: str = Field("aico_calls", min_length=1)
    calls_per_node: int = Field(64, ge=1, description="the local Ray's aico_calls (aico up)")
    orphan_after_s: float = Field(
        30.0, ge=5, description="a call with no caller audio this long is hung up")
    token_ttl_s: int = Field(300, ge=10, le=86400)
    greeting_cache_mib: int = Field(
        64, ge=1, le=4096, description="greeting audio a TTS deployment replica keeps (LRU)")
    end_of_turn_silence_s: float | None = None
    end_of_turn_model: bool | None = None
    barge_in_min_speech_s: float | None = None
    barge_in_min_words: int | None = None
    no_input_s: float | None = None
    max_duration_s: float | None = None
    # The media port (serve_apps/media_port.py): each API replica also answers on a port of its
    # own and voice URLs name it, so a call's frames skip the Serve proxy.
    direct_media: bool = Field(True, description="API replicas answer calls on a media port")
    media_port: int = Field(0, ge=0, le=65535, description="0: a free port per replica; fixed: "
                            "a node's replicas share it (behind a load balancer, with media_url)")
    media_url: str | None = Field(None, pattern=r"^wss?://[^/?#]+/?$", description="the public "
                                  "ws(s):// base of the media port behind a load balancer")


class ModelSettings(BaseSettings):
    """Where self-hosted models run (`AICO_MODELS`) and their Serve resources."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    mode: Literal["auto", "serve", "inprocess"] = Field(
        "auto", validation_alias="AICO_MODELS")
    # Per capability: {"stt": {"num_gpus": 1, "max_replicas": 4}, ...}
    deployments: PerCapability = Field(
        default_factory=dict, validation_alias="AICO_MODEL_DEPLOYMENTS")

    @field_validator("mode", mode="before")
    @classmethod
    def _normalise_mode(cls, value: Any) -> Any:
        # `AICO_MODELS=Serve ` has always meant serve.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("deployments", mode="before")
    @classmethod
    def _parse_deployments(cls, value: Any) -> Any:
        return _json_from_env("AICO_MODEL_DEPLOYMENTS", value)


class ProviderSettings(BaseSettings):
    """The server's default provider layer, over the packaged offline models."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Per capability: {"llm": {"kind": "openai-compatible", "base_url": ...}, ...}
    defaults: PerCapability = Field(
        default_factory=dict, validation_alias="AICO_PROVIDERS")

    @field_validator("defaults", mode="before")
    @classmethod
    def _parse_defaults(cls, value: Any) -> Any:
        return _json_from_env("AICO_PROVIDERS", value)


class SecuritySettings(BaseSettings):
    """Keys: secrets at rest (AES-GCM, `kid:key,...`, the first seals) and signing."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    secret_key: str | None = Field(
        None, validation_alias="AICO_SECRET_KEY")
    signing_key: str | None = Field(
        None, validation_alias="AICO_SIGNING_KEY")


class LimitSettings(BaseSettings):
    """Bounds on what a flow, an organization or a connection may use (`AICO_LIMIT_*`)."""

    model_config = SettingsConfigDict(env_prefix="AICO_LIMIT_", extra="ignore")

    # Flow execution (flows/runner.py, flows/executor.py, flows/expressions.py).
    flow_subflow_depth: int = Field(8, ge=1, le=64, description="nested subflow sessions")
    flow_external_calls_per_step: int = Field(
        10, ge=1, le=1000, description="http calls and extractions one step may make")
    flow_step_deadline_s: float = Field(30.0, gt=0, le=3600, description="one executor step")
    flow_expression_timeout_s: float = Field(
        1.0, gt=0, le=60, description="one template render or condition evaluation")

    # Voice sockets (serve_apps/routes/voice.py, actors/transports/websocket.py).
    voice_calls_per_org: int = Field(20, ge=1, description="concurrent live calls per organization")
    voice_lease_ttl_s: float = Field(15.0, ge=2, description="a call's lease lapses unrenewed")
    voice_sweep_every_s: float = Field(5.0, gt=0, description="how often a replica sweeps")
    voice_control_per_s: float = Field(10.0, gt=0, description="control frames (dtmf...) per second")
    voice_control_burst: int = Field(20, ge=1)
    voice_max_text_frame_bytes: int = Field(4096, ge=256)
    voice_max_audio_frame_bytes: int = Field(64 * 1024, ge=320)
    # Caller audio may run ahead of the wall clock by this many seconds (network jitter).
    voice_audio_slack_s: float = Field(2.0, ge=0.2)
    live_observers_per_session: int = Field(8, ge=1)

    # Rate limits per minute, counted in PostgreSQL so every API replica shares them
    # (db/rate_limits.py); past one: 429 with Retry-After naming the limit.
    sessions_per_minute_per_org: int = Field(
        120, ge=1, description="POST /v1/flows/{id}/sessions per organization")
    messages_per_minute_per_org: int = Field(
        1200, ge=1, description="POST /v1/sessions/{id}/messages per organization")
    messages_per_minute_per_session: int = Field(
        60, ge=1, description="POST /v1/sessions/{id}/messages per session")

    # Integrations (serve_apps/idempotency.py, flows/webhook_outbox.py).
    idempotency_ttl_s: float = Field(
        86400.0, gt=0, description="an Idempotency-Key's first response is replayed this long")
    webhook_retry_base_s: float = Field(
        5.0, gt=0, description="first retry of a failed webhook delivery; doubles each time")
    webhook_retry_max_s: float = Field(3600.0, gt=0, description="longest wait between retries")
    webhook_give_up_after_s: float = Field(
        86400.0, gt=0, description="a delivery still failing this long after its event is failed")
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="one delivery attempt")
    webhook_poll_s: float = Field(
        5.0, gt=0, description="how often the outbox worker looks for due retries")
    widget_sessions_per_minute_per_key: int = Field(
        60, ge=1, description="sessions a web widget key may start per minute")
    widget_messages_per_minute_per_visitor: int = Field(
        30, ge=1, description="widget messages per visitor (client address) per minute")
    widget_voice_calls_per_minute_per_visitor: int = Field(
        5, ge=1, description="widget voice calls a visitor (client address) may start per minute")
    # Phone (flows/telephony.py): the toll-fraud guard's caps on outbound calls.
    outbound_calls_per_org: int = Field(
        10, ge=1, description="outbound phone calls in progress at once per organization")
    outbound_calls_per_minute_per_org: int = Field(
        20, ge=1, description="outbound phone calls placed per minute per organization")


class WhatsAppSettings(BaseSettings):
    """The WhatsApp channel (`AICO_WHATSAPP_*`): where the Graph API is, and conversation life."""

    model_config = SettingsConfigDict(env_prefix="AICO_WHATSAPP_", extra="ignore")

    # Meta's by default; a loopback stand-in in tests.
    graph_url: str = "https://graph.facebook.com"
    graph_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$")
    inactivity_s: float = Field(86400.0, gt=0, description="a conversation closes after this")
    poll_s: float = Field(2.0, gt=0, description="how often a replica looks for pending rows")
    # Off: this replica stores and acknowledges webhooks but processes nothing (another does).
    worker: bool = True
    send_attempts: int = Field(5, ge=1, le=50, description="Graph rate-limit retries per message")
    retry_base_s: float = Field(1.0, gt=0, description="first backoff after a Graph rate limit")


class ObservabilitySettings(BaseSettings):
    """Metrics and traces for operators (`AICO_OBSERVABILITY_*`)."""

    model_config = SettingsConfigDict(env_prefix="AICO_OBSERVABILITY_", extra="ignore")

    # Prometheus scrapes GET /metrics with `Authorization: Bearer <token>`; unset: admins only.
    metrics_token: str | None = None
    metrics_push_s: float = Field(2.0, gt=0, le=60, description="processes push to the hub")
    # OpenTelemetry spans per session and turn: off, console (stdout) or otlp (HTTP/protobuf).
    traces: Literal["off", "console", "otlp"] = "off"
    otlp_endpoint: str | None = Field(None, description="e.g. http://collector:4318/v1/traces")
    service_name: str = "aico"


class LiveKitSettings(BaseSettings):
    """The LiveKit server that carries SIP calls (`AICO_LIVEKIT_*`): its API, its webhooks."""

    model_config = SettingsConfigDict(env_prefix="AICO_LIVEKIT_", extra="ignore")

    url: str | None = Field(None, description="ws(s):// or http(s)://; unset: no LiveKit SIP")
    api_key: str | None = None
    api_secret: str | None = Field(None, repr=False)
    room_prefix: str = Field("call-", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    ringing_timeout_s: int = Field(30, ge=5, le=120, description="an outbound call rings")


class TelephonySettings(BaseSettings):
    """Phone carriers (`AICO_TELEPHONY_*`): where their REST APIs are (loopback fakes in tests)."""

    model_config = SettingsConfigDict(env_prefix="AICO_TELEPHONY_", extra="ignore")

    twilio_api_url: str = "https://api.twilio.com"
    # A phone stream token (the <Parameter> of Twilio's <Stream>) attaches once, within this.
    stream_token_ttl_s: int = Field(120, ge=10, le=3600)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AICO_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aico")
    # The owner's URL: migrations and `aico up`'s seeding run with it.
    database_url: str | None = None
    # The application role's URL (not the tables' owner, no BYPASSRLS) for the API, actors and
    # executor; unset: `database_url` with the user `aico_app` (db.pool.app_database_url).
    database_app_url: str | None = None
    # Ray's own variable: join this cluster instead of starting a local Ray.
    ray_address: str | None = Field(None, validation_alias="RAY_ADDRESS")
    host: str = "127.0.0.1"
    port: int = 8000
    # Public base URL used to build callback and voice URLs; derived from host/port when unset.
    public_url: str | None = None

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_org_claim: str = "organization_id"
    # Logto organization roles, entries "<org id>:<role>" mapped to owner/admin/editor/viewer.
    oidc_roles_claim: str = "organization_roles"
    # Or from the token's scope: an organization role's API permissions "<prefix><role>" (Logto puts
    # them in organization tokens); empty turns this off.
    oidc_role_scope_prefix: str = "aico:"
    oidc_algorithms: list[str] = ["ES256", "ES384", "RS256"]
    oidc_jwks_cache_s: float = 3600.0
    oidc_dashboard_client_id: str | None = None

    max_body_bytes: int = 1_048_576
    db_pool_min: int = 1
    db_pool_max: int = 10

    api_replicas: int = 1
    dashboard_dir: Path | None = None

    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    # Named apart from AICO_MODELS / AICO_PROVIDERS, which are fields inside these sections.
    serving: ModelSettings = Field(default_factory=ModelSettings)
    default_providers: ProviderSettings = Field(default_factory=ProviderSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)
    telephony: TelephonySettings = Field(default_factory=TelephonySettings)
    livekit: LiveKitSettings = Field(default_factory=LiveKitSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dev_token_path(self) -> Path:
        return self.home / "dev-token"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_audience)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def worker_environment(settings: Settings, *, database_url: str) -> dict[str, str]:
    """The AICO_* environment a Ray worker or Serve replica starts with, so that its own
    `get_settings()` reads what this process read (plus where the database ended up)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("AICO_")}
    env.update(AICO_HOME=str(settings.home), AICO_DATABASE_URL=database_url,
               AICO_HOST=settings.host, AICO_PORT=str(settings.port))
    return env
