"""Row-level security, the second wall: what the application's database role can reach when the
application's own organization checks are taken away (raw SQL as `aico_app`).

Every table with an `org_id` column is found in information_schema, so a table added later
without `aico_enable_org_rls` fails here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from aico.settings import Settings
from db.api_clients import insert_api_client, new_token
from db.egress_allowlist import replace_egress_allowlist
from db.flows import insert_flow, insert_flow_version
from db.http_calls import claim_http_call
from db.live_events import insert_live_events_row
from db.organizations import insert_organization, upsert_member
from db.pool import APP_ROLE, app_role_dsn, create_app_pool
from db.provider_configs import replace_provider_configs
from db.provider_profiles import replace_provider_profiles
from db.secrets import upsert_secret
from db.sessions import commit_session_step, insert_session
from db.voice_leases import acquire_voice_leases_row, insert_voice_token_uses_row

FLOW = {"name": "rls", "nodes": [{"id": "start", "type": "start"}], "edges": []}


async def org_tables(conn: asyncpg.Connection) -> dict[str, str]:
    """Every organization table of the schema and the column that names its organization."""
    return {"organizations": "id", **{t: "org_id" for t in await tables_with(conn, "org_id")}}


async def session_tables(conn: asyncpg.Connection) -> list[str]:
    """Tables that belong to an organization through their session (no org_id of their own)."""
    return sorted(set(await tables_with(conn, "session_id")) - set(await org_tables(conn)))


async def tables_with(conn: asyncpg.Connection, column: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.table_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND c.column_name = $1"
        " AND t.table_type = 'BASE TABLE' ORDER BY 1", column)
    return [r["table_name"] for r in rows]


async def seed_organization(pool: asyncpg.Pool) -> UUID:
    """An organization with a row in each organization table that these tests know of."""
    slug = "rls-" + secrets.token_hex(5)
    org = (await insert_organization(pool, slug=slug, name=slug))["id"]
    await upsert_member(pool, org_id=org, subject=f"user-{slug}", role="admin")
    await insert_api_client(pool, org_id=org, name="rls", token=new_token(), role="admin")
    flow = await insert_flow(pool, org_id=org, name="rls", description="", document=FLOW)
    async with pool.acquire() as conn:
        version = await insert_flow_version(conn, org_id=org, flow_id=flow["id"], document=FLOW)
        await replace_provider_configs(conn, org_id=org, configs={"llm": {"kind": "instant"}})
    await upsert_secret(pool, org_id=org, name="API_KEY", key_id="k1", nonce=b"n" * 12,
                        ciphertext=b"sealed")
    session = await insert_session(pool, org_id=org, flow_id=flow["id"],
                                   flow_version_id=version["id"], channel="chat", variables={})
    assert await commit_session_step(
        pool, session_id=session["id"], expected_version=0, status="active", state={},
        variables={}, events=[{"event_id": "e1", "type": "user.turn", "direction": "in",
                               "payload": {"text": "hi"}}],
        turns=[{"event_index": 0, "role": "user", "text": "hi"}]) == 1
    sid = session["id"]
    async with pool.acquire() as conn:
        await replace_egress_allowlist(conn, org_id=org, hosts=["10.1.0.0/16"])
        await replace_provider_profiles(conn, org_id=org, profiles=[{
            "capability": "llm", "name": "default", "config": {"kind": "instant"},
            "allowed_models": [], "max_tokens_cap": None, "internal": False,
            "is_default": True}])
        await insert_live_events_row(conn, org_id=org, session_id=sid, payload={"type": "x"})
        await insert_voice_token_uses_row(conn, token_id=f"t-{slug}", org_id=org, session_id=sid,
                                          expires_at=datetime.now(UTC) + timedelta(minutes=5))
        assert await claim_http_call(conn, session_id=sid, call_id="c1",
                                     stale_after_s=60) == (True, None)
    assert await acquire_voice_leases_row(pool, org_id=org, session_id=sid, holder="h1",
                                          ttl_s=60, max_per_org=10) == "acquired"
    return org


@pytest.fixture
async def two_orgs(pool: asyncpg.Pool) -> tuple[UUID, UUID]:
    return await seed_organization(pool), await seed_organization(pool)


@pytest.fixture
async def as_app(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the application role, as the API, actors and executor have."""
    conn = await asyncpg.connect(app_role_dsn(pg_dsn))
    yield conn
    await conn.close()


async def set_org(conn: asyncpg.Connection, org: UUID | None) -> None:
    await conn.execute("SELECT set_config('aico.org_id', $1, true)", str(org) if org else "")


async def test_every_organization_table_forces_a_policy(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tables = [*await org_tables(conn), *await session_tables(conn)]
        flags = {r["relname"]: r for r in await conn.fetch(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid"
            "          AND p.polname = 'org_isolation') AS isolated"
            " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relname = ANY($1::text[])", list(tables))}
    assert {"organizations", "sessions", "secrets", "session_events"} <= set(tables)
    unguarded = sorted(t for t in tables if not (flags[t]["relrowsecurity"]
                                                 and flags[t]["relforcerowsecurity"]
                                                 and flags[t]["isolated"]))
    assert unguarded == [], f"organization tables without FORCE ROW LEVEL SECURITY: {unguarded}"


async def test_another_organization_reads_nothing_of_it(
        pool: asyncpg.Pool, as_app: asyncpg.Connection, two_orgs: tuple[UUID, UUID]) -> None:
    victim, intruder = two_orgs
    tables = await org_tables(as_app)
    async with as_app.transaction():
        await set_org(as_app, intruder)
        for table, column in tables.items():
            # Asked for the victim's rows by id, and for everything: only the intruder's come back.
            seen = await as_app.fetchval(
                f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', victim)
            assert seen == 0, f"{table}: {seen} rows of another organization visible"
            foreign = await as_app.fetchval(
                f'SELECT count(*) FROM "{table}" WHERE "{column}" <> $1', intruder)
            assert foreign == 0, f"{table}: rows of other organizations visible"
            changed = await as_app.execute(
                f'UPDATE "{table}" SET "{column}" = "{column}" WHERE "{column}" = $1', victim)
            assert changed == "UPDATE 0", table
            removed = await as_app.execute(f'DELETE FROM "{table}" WHERE "{column}" = $1', victim)
            assert removed == "DELETE 0", table
        for table in await session_tables(as_app):
            foreign = await as_app.fetchval(
                f'SELECT count(*) FROM "{table}" t WHERE NOT EXISTS'
                " (SELECT 1 FROM sessions s WHERE s.id = t.session_id AND s.org_id = $1)",
                intruder)
            assert foreign == 0, f"{table}: rows of other organizations' sessions visible"
    # The victim's rows are still there, and each seeded table had one to protect.
    async with pool.acquire() as owner:
        for table in ("organizations", "members", "api_clients", "flows", "flow_versions",
                      "sessions", "session_events", "transcript_turns", "provider_configs",
                      "secrets", "egress_allowlists", "provider_profiles", "live_events",
                      "voice_token_uses", "voice_leases"):
            kept = await owner.fetchval(
                f'SELECT count(*) FROM "{table}" WHERE "{tables[table]}" = $1', victim)
            assert kept >= 1, table


async def test_the_same_organization_reads_its_own_rows(
        as_app: asyncpg.Connection, two_orgs: tuple[UUID, UUID]) -> None:
    org, _other = two_orgs
    async with as_app.transaction():
        await set_org(as_app, org)
        assert await as_app.fetchval("SELECT count(*) FROM sessions") == 1
        assert await as_app.fetchval("SELECT count(*) FROM secrets") == 1
        assert await as_app.fetchval("SELECT count(*) FROM organizations") == 1


async def test_no_organization_set_reads_nothing(
        as_app: asyncpg.Connection, two_orgs: tuple[UUID, UUID]) -> None:
    tables = await org_tables(as_app)
    # Outside any transaction, and after a transaction that did set one (the setting was local).
    async with as_app.transaction():
        await set_org(as_app, two_orgs[0])
    for table in tables:
        assert await as_app.fetchval(f'SELECT count(*) FROM "{table}"') == 0, table
    async with as_app.transaction():
        await set_org(as_app, None)
        for table in tables:
            assert await as_app.fetchval(f'SELECT count(*) FROM "{table}"') == 0, table


async def test_rows_for_another_organization_are_refused(
        pool: asyncpg.Pool, as_app: asyncpg.Connection, two_orgs: tuple[UUID, UUID]) -> None:
    victim, intruder = two_orgs
    tables = await org_tables(as_app)
    async with pool.acquire() as owner:
        samples = {t: await owner.fetchval(
            f'SELECT row_to_json(r) FROM "{t}" r WHERE "{c}" = $1 LIMIT 1', victim)
            for t, c in tables.items()}
    tried = []
    for table, sample in samples.items():
        if sample is None:
            continue  # a table the seed does not fill; its policy is checked above
        # A copy of the victim's row, written while acting for the intruder: the policy refuses
        # it before any unique key or foreign key is looked at.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with as_app.transaction():
                await set_org(as_app, intruder)
                await as_app.execute(
                    f'INSERT INTO "{table}" SELECT * FROM json_populate_record(NULL::"{table}",'
                    " $1::json)", json.dumps(sample))
        tried.append(table)
    assert {"sessions", "secrets", "flows", "session_events", "organizations",
            "voice_leases", "provider_profiles"} <= set(tried)
    # Moving one's own row into another organization is refused too.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with as_app.transaction():
            await set_org(as_app, intruder)
            await as_app.execute("UPDATE flows SET org_id = $1 WHERE org_id = $2",
                                 victim, intruder)
    async with pool.acquire() as owner:
        assert await owner.fetchval("SELECT count(*) FROM flows WHERE org_id = $1", victim) == 1


async def test_the_application_role_cannot_step_around_the_wall(
        as_app: asyncpg.Connection, two_orgs: tuple[UUID, UUID]) -> None:
    role = await as_app.fetchrow(
        "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles"
        " WHERE rolname = current_user")
    assert (role["name"], role["rolsuper"], role["rolbypassrls"]) == (APP_ROLE, False, False)
    owners = await as_app.fetch(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert APP_ROLE not in {r["tableowner"] for r in owners}
    attempts: list[tuple[str, tuple[Any, ...]]] = [
        ("ALTER TABLE sessions DISABLE ROW LEVEL SECURITY", ()),
        ("ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY", ()),
        ("DROP POLICY org_isolation ON sessions", ()),
        ("SET ROLE postgres", ()),
        ("SELECT aico_enable_org_rls('sessions')", ()),
        ("SELECT * FROM schema_migrations", ()),
    ]
    for sql, args in attempts:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_app.execute(sql, *args)
    # The narrow lookups answer one organization for one exact key, and nothing for a guess.
    assert await as_app.fetchval("SELECT aico_session_org($1)", UUID(int=1)) is None
    assert await as_app.fetchval("SELECT aico_org_by_slug('')") is None


async def test_serving_processes_connect_as_the_application_role(
        settings: Settings, two_orgs: tuple[UUID, UUID]) -> None:
    from db.flows import list_flows
    from db.sessions import list_sessions

    pool = await create_app_pool(settings, min_size=1, max_size=2)
    try:
        assert await pool.fetchval("SELECT current_user") == APP_ROLE
        org, other = two_orgs
        # The data-access functions set the organization themselves: their callers don't change.
        assert [f["name"] for f in await list_flows(pool, org_id=org)] == ["rls"]
        sessions = await list_sessions(pool, org_id=org)
        assert len(sessions) == 1 and sessions[0]["org_id"] == org
        # Nothing is left set on a pooled connection for the next borrower.
        assert await pool.fetchval("SELECT count(*) FROM sessions") == 0
        assert other != org
    finally:
        await pool.close()


async def test_the_sweeper_reaches_every_organization_through_narrow_functions(
        settings: Settings, pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]) -> None:
    from db.live_events import delete_live_events_older_than
    from db.voice_leases import delete_voice_token_uses_expired, list_voice_leases_expired

    org, other = two_orgs
    async with pool.acquire() as owner:
        await owner.execute("UPDATE voice_leases SET expires_at = now() - interval '1 minute'"
                            " WHERE org_id = ANY($1::uuid[])", [org, other])
        await owner.execute("UPDATE voice_token_uses SET expires_at = now() - interval '1 minute'"
                            " WHERE org_id = $1", org)
        await owner.execute("UPDATE live_events SET created_at = now() - interval '30 days'"
                            " WHERE org_id = $1", org)
    app_pool = await create_app_pool(settings, min_size=1, max_size=2)
    try:
        expired = {r["org_id"] for r in await list_voice_leases_expired(app_pool, limit=1000)}
        assert {org, other} <= expired
        assert await delete_voice_token_uses_expired(app_pool) >= 1
        assert await delete_live_events_older_than(app_pool, seconds=20 * 86400) >= 1
    finally:
        await app_pool.close()
    async with pool.acquire() as owner:
        assert await owner.fetchval(
            "SELECT count(*) FROM voice_token_uses WHERE org_id = $1", org) == 0
        assert await owner.fetchval(
            "SELECT count(*) FROM voice_token_uses WHERE org_id = $1", other) == 1
        assert await owner.fetchval(
            "SELECT count(*) FROM live_events WHERE org_id = $1", org) == 0
        assert await owner.fetchval(
            "SELECT count(*) FROM live_events WHERE org_id = $1", other) == 1


async def test_a_serving_pool_as_the_owner_is_refused(settings: Settings, pg_dsn: str) -> None:
    """AICO_DATABASE_APP_URL pointed at the owner by mistake: the second wall would be gone, so
    the serving process refuses to start rather than run without it."""
    from db.pool import ApplicationRoleNotConfined

    misconfigured = settings.model_copy(update={"database_app_url": pg_dsn})
    with pytest.raises(ApplicationRoleNotConfined, match="superuser"):
        await create_app_pool(misconfigured, min_size=1, max_size=1)
