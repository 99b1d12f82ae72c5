"""Ordered SQL migrations, applied once each, under a PostgreSQL advisory lock."""

from __future__ import annotations

from pathlib import Path

import asyncpg

# Any constant works; it only has to be the same for every AICO process.
MIGRATION_LOCK_ID = 0x41_49_43_4F


def migration_files() -> list[tuple[str, str]]:
    folder = Path(__file__).parent / "migrations"
    return [(p.name, p.read_text()) for p in sorted(folder.glob("*.sql"))]


async def prepare_database(dsn: str) -> list[str]:
    """Create the `vector` extension and apply pending migrations; return those applied now."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied now. Safe to run concurrently."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now
