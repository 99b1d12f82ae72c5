"""Auth fixtures: a real OIDC provider on loopback and API apps configured to trust it.

The provider is node `oidc-provider` (the library Logto is built on), run from
tests/oidc_provider/server.mjs: tokens come from its real token endpoint with the
client-credentials grant and a resource indicator, as a Logto machine-to-machine app gets them.
`npm ci` runs there first when its node_modules is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest

from aico.settings import Settings
from db.api_clients import insert_api_client, new_token
from db.organizations import insert_organization

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
# The resource (API indicator) the provider issues AICO's tokens for: AICO_OIDC_AUDIENCE.
AUDIENCE = "https://api.aico.test"
OTHER_AUDIENCE = "https://other-api.example"
CLIENT_ID, CLIENT_SECRET = "aico-m2m", "aico-m2m-secret"


def _ensure_node_modules() -> None:
    if (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the OIDC tests need Node.js 20+ with npm on PATH (tests/oidc_provider)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROVIDER_DIR, check=True
    )


@dataclass
class OidcProvider:
    """A running provider and the calls tests make on it."""

    issuer: str
    alg: str
    process: subprocess.Popen[bytes]
    log_path: Path
    audience: str = AUDIENCE
    other_audience: str = OTHER_AUDIENCE

    async def token(
        self,
        *,
        organization_id: str | None,
        resource: str = AUDIENCE,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        roles: tuple[str, ...] = ("admin",),
        raw_roles: list[str] | None = None,
        scope: str | None = None,
    ) -> str:
        """An access token from the provider's token endpoint (client_credentials + resource),
        with Logto's `organization_roles` claim: `roles` in the token's organization, or
        `raw_roles` entries exactly as given."""
        form = {
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": client_secret, "resource": resource,
        }
        if organization_id is not None:
            form["organization_id"] = organization_id
        entries = raw_roles if raw_roles is not None else (
            [f"{organization_id}:{r}" for r in roles] if organization_id is not None else [])
        if entries:
            form["organization_roles"] = " ".join(entries)
        if scope is not None:
            form["scope"] = scope
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{self.issuer}/token", data=form)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def sign(self, claims: dict, *, header: dict | None = None) -> str:
        """A JWT signed with the provider's current key: claims the token endpoint never issues
        (expired, not yet valid, another issuer) without waiting for the clock."""
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.issuer}/__test/sign", json={"claims": claims, "header": header or {}}
            )
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def rotate_keys(self) -> dict:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{self.issuer}/__test/rotate")
        assert response.status_code == 200, response.text
        return response.json()

    async def stats(self) -> dict:
        """How often discovery and the JWKS were fetched, and the current signing kid."""
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"{self.issuer}/__test/stats")
        assert response.status_code == 200, response.text
        return response.json()

    def claims_now(self, **extra: object) -> dict:
        now = int(time.time())
        org = extra.get("organization_id")
        roles = {"organization_roles": [f"{org}:admin"]} if isinstance(org, str) else {}
        return {"iss": self.issuer, "aud": AUDIENCE, "sub": CLIENT_ID, "client_id": CLIENT_ID,
                "iat": now, "exp": now + 600, **roles, **extra}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_provider(*, alg: str, log_dir: Path, port: int = 0) -> OidcProvider:
    _ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        pytest.fail("the OIDC tests need Node.js 20+ on PATH (tests/oidc_provider)")
    log_path = log_dir / f"oidc-provider-{alg}-{secrets.token_hex(3)}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node, "server.mjs", "--port", str(port), "--alg", alg],
            cwd=PROVIDER_DIR, stdout=subprocess.PIPE, stderr=log,
            env={**os.environ, "NODE_ENV": "test"},
        )
    assert process.stdout is not None
    line = _read_line(process, timeout_s=60)
    if not line:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"OIDC provider did not start: {log_path.read_text(errors='replace')[-2000:]}")
    ready = json.loads(line)
    provider = OidcProvider(issuer=ready["issuer"], alg=alg, process=process, log_path=log_path)
    _wait_for_discovery(provider)
    return provider


def _read_line(process: subprocess.Popen[bytes], *, timeout_s: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout=timeout_s):
            return ""
        return process.stdout.readline().decode().strip()
    finally:
        selector.close()


def _wait_for_discovery(provider: OidcProvider) -> None:
    deadline = time.monotonic() + 30
    url = f"{provider.issuer}/.well-known/openid-configuration"
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or provider.process.poll() is not None:
            provider.stop()
            pytest.fail(f"OIDC provider discovery never answered at {url}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """The session's provider: signs ES384, as Logto does."""
    provider = start_provider(alg="ES384", log_dir=tmp_path_factory.mktemp("oidc"))
    yield provider
    provider.stop()


StartProvider = Callable[..., OidcProvider]


@pytest.fixture
def start_oidc_provider(tmp_path: Path) -> Iterator[StartProvider]:
    """A provider of the test's own (another alg, or keys the test may rotate), stopped after."""
    started: list[OidcProvider] = []

    def start(*, alg: str = "ES384") -> OidcProvider:
        provider = start_provider(alg=alg, log_dir=tmp_path)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


ApiFor = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def oidc_api(
    aico_home: Path, pg_dsn: str, pool: asyncpg.Pool, oidc_provider: OidcProvider
) -> AsyncIterator[ApiFor]:
    """`await oidc_api(token=..., **settings)`: an HTTP client on a fresh API app (so a fresh
    verifier with an empty key cache) whose OIDC issuer is the loopback provider by default."""
    from serve_apps.api import create_app

    clients: list[httpx.AsyncClient] = []

    async def make(*, token: str | None = None, **overrides: object) -> httpx.AsyncClient:
        fields: dict[str, object] = {
            "home": aico_home, "database_url": pg_dsn, "max_body_bytes": 256 * 1024,
            "oidc_issuer": oidc_provider.issuer, "oidc_audience": AUDIENCE,
        }
        fields.update(overrides)
        app = create_app(Settings(**fields), pool=pool)  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aico.test",
            headers=headers, timeout=60,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@dataclass
class IdpOrg:
    """An organization known both to AICO and (by `external_id`) to the identity provider."""

    id: UUID
    slug: str
    external_id: str
    api_token: str


MakeIdpOrg = Callable[[], Awaitable[IdpOrg]]


@pytest.fixture
def make_idp_org(pool: asyncpg.Pool) -> MakeIdpOrg:
    async def make() -> IdpOrg:
        suffix = secrets.token_hex(5)
        org = await insert_organization(
            pool, slug=f"idp-{suffix}", name=f"IdP org {suffix}", external_id=f"logto-org-{suffix}"
        )
        api_token = new_token()
        await insert_api_client(pool, org_id=org["id"], name="integration", token=api_token)
        return IdpOrg(
            id=org["id"], slug=org["slug"], external_id=org["external_id"], api_token=api_token
        )

    return make
