"""Shared fixtures: a real embedded PostgreSQL (pgvector), the API app in-process, and orgs.

Every test that needs an organization asks `make_org()` for a fresh one, so tests never see
each other's rows and cross-organization checks are natural.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest

from aico.settings import Settings, get_settings
from db.api_clients import insert_api_client, new_token
from db.embedded import EmbeddedPostgres, start_embedded_postgres
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_app_pool, create_pool


@pytest.fixture(autouse=True)
def _settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process reads its settings once (`get_settings()` is cached). A test that changes an
    AICO_* variable with `monkeypatch` stands for a process started with it: read afresh."""
    setenv, delenv = monkeypatch.setenv, monkeypatch.delenv

    def set_and_reread(name: str, value: str, prepend: str | None = None) -> None:
        setenv(name, value, prepend)
        if name.startswith("AICO_"):
            get_settings.cache_clear()

    def del_and_reread(name: str, raising: bool = True) -> None:
        delenv(name, raising)
        if name.startswith("AICO_"):
            get_settings.cache_clear()

    monkeypatch.setenv = set_and_reread  # type: ignore[method-assign]
    monkeypatch.delenv = del_and_reread  # type: ignore[method-assign]
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def aico_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("aico-home")
    home.chmod(0o755)
    return home


@pytest.fixture(scope="session")
def embedded_pg(aico_home: Path) -> Iterator[EmbeddedPostgres]:
    pg = start_embedded_postgres(aico_home / "pg", delete_on_stop=True)
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
async def pg_dsn(embedded_pg: EmbeddedPostgres) -> str:
    await prepare_database(embedded_pg.dsn)
    return embedded_pg.dsn


@pytest.fixture(scope="session")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_dsn, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def settings(aico_home: Path, pg_dsn: str) -> Settings:
    return Settings(home=aico_home, database_url=pg_dsn, max_body_bytes=256 * 1024)


@pytest.fixture(scope="session")
async def app_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The serving processes' pool: the application role, under row-level security. (`pool` is
    the owner's, for arranging and for checking what was stored.)"""
    pool = await create_app_pool(settings, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def app(settings: Settings, app_pool: asyncpg.Pool):
    from serve_apps.api import create_app

    return create_app(settings, pool=app_pool)


@dataclass
class OrgHandle:
    id: UUID
    slug: str
    token: str
    client: httpx.AsyncClient


MakeOrg = Callable[..., Awaitable[OrgHandle]]


@pytest.fixture
async def make_org(app, pool: asyncpg.Pool) -> AsyncIterator[MakeOrg]:
    clients: list[httpx.AsyncClient] = []

    async def make(*, role: str = "admin", settings: dict | None = None) -> OrgHandle:
        slug = "org-" + secrets.token_hex(5)
        org = await insert_organization(pool, slug=slug, name=slug, settings=settings)
        token = new_token()
        await insert_api_client(pool, org_id=org["id"], name="test", token=token, role=role)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aico.test",
            headers={"Authorization": f"Bearer {token}"}, timeout=60,
        )
        clients.append(client)
        return OrgHandle(id=org["id"], slug=slug, token=token, client=client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def api(make_org: MakeOrg) -> httpx.AsyncClient:
    """An authenticated client for a fresh organization."""
    return (await make_org()).client


@pytest.fixture
async def anon(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://aico.test"
    ) as client:
        yield client


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[None]:
    """One local Ray for the whole test run (≈7 s). Use this fixture; never call ray.init or
    ray.shutdown in a test module: a second init or an early shutdown breaks other tests."""
    import os

    import ray

    os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
    env = {
        "AICO_HOME": str(settings.home),
        "AICO_DATABASE_URL": settings.database_url or "",
    }
    # address="local": always a Ray of this run's own, never one another process on the machine
    # started (a plain init joins the cluster in /tmp/ray/ray_current_cluster).
    ray.init(address="local", num_cpus=4, include_dashboard=False,
             runtime_env={"env_vars": env}, logging_level="WARNING")
    from ray import serve

    # Serve starts here, on a port the kernel picks: whichever test deploys first, the proxy
    # is the same (`serve_http` reads the port back).
    serve.start(http_options={"host": "127.0.0.1", "port": 0})
    yield
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def serve_http(ray_cluster: None) -> str:
    """Ray Serve's HTTP proxy on a free loopback port; returns its base URL."""
    from cli.serve_port import serve_http_port

    return f"http://127.0.0.1:{serve_http_port()}"
