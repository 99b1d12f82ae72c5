"""Migrations: applied once, a second run changes nothing, concurrent runs do not collide."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from db.migrate import apply_migrations, migration_files, prepare_database

SCHEMA_SNAPSHOT = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, column_name
"""


async def fresh_database(pg_dsn: str) -> str:
    name = "mig_" + secrets.token_hex(4)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg_dsn.replace("/postgres?", f"/{name}?")


async def test_second_run_changes_nothing(pg_dsn):
    dsn = await fresh_database(pg_dsn)
    first = await prepare_database(dsn)
    assert first == [name for name, _ in migration_files()]
    conn = await asyncpg.connect(dsn)
    try:
        before = [tuple(r) for r in await conn.fetch(SCHEMA_SNAPSHOT)]
        applied_rows = await conn.fetch("SELECT name, applied_at FROM schema_migrations")
        assert await apply_migrations(conn) == []
        assert [tuple(r) for r in await conn.fetch(SCHEMA_SNAPSHOT)] == before
        assert await conn.fetch("SELECT name, applied_at FROM schema_migrations") == applied_rows
        assert await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'") >= "0.8"
    finally:
        await conn.close()


async def test_concurrent_runs_apply_each_migration_once(pg_dsn):
    dsn = await fresh_database(pg_dsn)
    results = await asyncio.gather(*(prepare_database(dsn) for _ in range(4)))
    applied = [name for names in results for name in names]
    assert sorted(applied) == sorted(name for name, _ in migration_files())
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
    finally:
        await conn.close()
