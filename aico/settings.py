"""Server settings: one pydantic settings class read from AICO_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AICO_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aico")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Public base URL used to build callback and voice URLs; derived from host/port when unset.
    public_url: str | None = None

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_org_claim: str = "organization_id"
    oidc_algorithms: list[str] = ["ES256", "ES384", "RS256"]
    oidc_jwks_cache_s: float = 3600.0
    oidc_dashboard_client_id: str | None = None

    secret_key: str | None = None
    max_body_bytes: int = 1_048_576
    db_pool_min: int = 1
    db_pool_max: int = 10

    api_replicas: int = 1
    dashboard_dir: Path | None = None
    log_level: str = "INFO"

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
