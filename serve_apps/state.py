"""Per-process API state: settings and the database pool, opened lazily on the serving loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from aico.settings import Settings, get_settings
from db.pool import create_pool


@dataclass
class ApiState:
    settings: Settings
    _pool: asyncpg.Pool | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    owns_pool: bool = True
    # Lazily built helpers other routes hang here (OIDC verifier, Ray handles...).
    extras: dict[str, Any] = field(default_factory=dict)

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    if not self.settings.database_url:
                        raise RuntimeError("AICO_DATABASE_URL is not set for the API process")
                    self._pool = await create_pool(
                        self.settings.database_url,
                        min_size=self.settings.db_pool_min,
                        max_size=self.settings.db_pool_max,
                    )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None and self.owns_pool:
            await self._pool.close()
        self._pool = None


def app_state(app: Any) -> ApiState:
    """The app's state, built from this process's AICO_* environment on first use when the app
    was made with `from_environment` (it may have been pickled from another process)."""
    state = app.state.aico
    if state is None:
        state = app.state.aico = ApiState(settings=get_settings())
    return state
