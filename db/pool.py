"""The asyncpg connection pool (JSON and pgvector codecs) and the organization scope that
row-level security reads.

The API, the voice actors and the executor connect as the application role (`aico_app`: not
the tables' owner, no BYPASSRLS); migrations run as the owner. Every organization table has a
policy `org_id = current_setting('aico.org_id')`, so every data-access function in `db/` runs
its statements inside `org_transaction` (the caller names the organization) or
`session_transaction` (the organization of a session, looked up by a narrow SECURITY DEFINER
function), which set `aico.org_id` for that transaction only. A statement that runs without
either sees no organization rows at all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pgvector.asyncpg import register_vector

from aico.settings import Settings

# The login role of the API, actors and executor (created by migration 0050).
APP_ROLE = "aico_app"

# What a query runs on: a connection (or the pool's proxy for one), or the pool itself.
Connection = asyncpg.Connection | PoolConnectionProxy
Conn = Connection | asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    await register_vector(conn)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool for `dsn` as given (the owner's DSN for tools and tests; see `create_app_pool`)."""
    # No reset query on release: AICO keeps no per-connection session state (the organization
    # is set per transaction; advisory locks are taken on dedicated connections or inside
    # transactions), and the reset costs two round trips on every executor step.
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_release
    )


async def create_app_pool(settings: Settings, *, min_size: int = 1,
                          max_size: int = 10) -> asyncpg.Pool:
    """The pool of a serving process, connected as the application role. Refuses a role that
    row-level security would not hold (a superuser, BYPASSRLS, or a table owner)."""
    pool = await create_pool(app_database_url(settings), min_size=min_size, max_size=max_size)
    try:
        await check_application_role(pool)
    except BaseException:
        await pool.close()
        raise
    return pool


class ApplicationRoleNotConfined(RuntimeError):
    """The serving processes' database role would see every organization's rows."""


async def check_application_role(conn: Conn) -> None:
    role = await conn.fetchrow(
        "SELECT r.rolname, r.rolsuper, r.rolbypassrls, EXISTS ("
        "   SELECT 1 FROM pg_tables t WHERE t.schemaname = 'public'"
        "      AND pg_has_role(r.rolname, t.tableowner, 'MEMBER')) AS owns_tables"
        " FROM pg_roles r WHERE r.rolname = current_user")
    assert role is not None  # current_user always has a pg_roles row
    reasons = [why for flag, why in (("rolsuper", "is a superuser"),
                                     ("rolbypassrls", "has BYPASSRLS"),
                                     ("owns_tables", "owns AICO's tables")) if role[flag]]
    if reasons:
        raise ApplicationRoleNotConfined(
            f"the database role {role['rolname']!r} of AICO_DATABASE_APP_URL "
            f"{' and '.join(reasons)}: row-level security would not hold; connect as "
            f"{APP_ROLE} (see migration 0050)")


def app_database_url(settings: Settings) -> str:
    """`AICO_DATABASE_APP_URL`, or `AICO_DATABASE_URL` with the user replaced by `aico_app` (and
    no password: right for the embedded server, whose Unix socket trusts local roles)."""
    if settings.database_app_url:
        return settings.database_app_url
    if not settings.database_url:
        raise RuntimeError("AICO_DATABASE_URL is not set")
    return app_role_dsn(settings.database_url)


def app_role_dsn(dsn: str, role: str = APP_ROLE) -> str:
    """`dsn` with its user replaced by `role` and its password dropped."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(role)}@{host}"))


async def _release(conn: asyncpg.Connection) -> None:
    # A scope interrupted between BEGIN and COMMIT (a cancelled task) must not hand its open
    # transaction, and its organization, to the next borrower.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _uuid_literal(value: UUID | str) -> str:
    # Parsed as a UUID first, so the text is hex digits and dashes only: safe to inline, which
    # lets BEGIN and set_config travel in one round trip.
    return str(value if isinstance(value, UUID) else UUID(str(value)))


@asynccontextmanager
async def org_transaction(conn: Conn, org_id: UUID | str) -> AsyncIterator[Connection]:
    """A connection in a transaction scoped to `org_id` (the caller's own transaction, if the
    connection is in one: the organization then holds until that transaction ends)."""
    org = _uuid_literal(org_id)
    async with _scoped(conn, f"SELECT set_config('aico.org_id', '{org}', true)") as scoped:
        yield scoped


async def set_transaction_org(conn: Connection, org_id: UUID | str) -> None:
    """Inside a transaction the caller holds: act for `org_id` until that transaction ends."""
    if not conn.is_in_transaction():
        raise RuntimeError("set_transaction_org needs a transaction: it would not hold")
    await conn.execute(f"SELECT set_config('aico.org_id', '{_uuid_literal(org_id)}', true)")


@asynccontextmanager
async def session_transaction(conn: Conn,
                              session_id: UUID | str) -> AsyncIterator[Connection]:
    """A transaction scoped to the organization of `session_id` (none when there is no such
    session): for the paths that hold only a session's unguessable id (executor, voice)."""
    sql = ("SELECT set_config('aico.org_id', COALESCE(aico_session_org("
           f"'{_uuid_literal(session_id)}')::text, ''), true)")
    async with _scoped(conn, sql) as scoped:
        yield scoped


@asynccontextmanager
async def lookup_transaction(conn: Conn, lookup: str,
                             *args: Any) -> AsyncIterator[Connection]:
    """A transaction scoped to the organization that the SECURITY DEFINER function `lookup`
    (a name from migration 0050) returns for `args`; none when it returns NULL."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(args) + 1))
    sql = f"SELECT set_config('aico.org_id', COALESCE({lookup}({placeholders})::text, ''), true)"
    async with _scoped(conn, sql, *args) as scoped:
        yield scoped


@asynccontextmanager
async def _scoped(conn: Conn, set_org: str, *args: Any) -> AsyncIterator[Connection]:
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired, _scoped(acquired, set_org, *args) as scoped:
            yield scoped
        return
    if conn.is_in_transaction():
        await conn.execute(set_org, *args)
        yield conn
        return
    if args:
        await conn.execute("BEGIN")
        await _run_or_rollback(conn, conn.execute(set_org, *args))
    else:
        await _run_or_rollback(conn, conn.execute(f"BEGIN; {set_org}"))
    try:
        yield conn
    except BaseException:
        if conn.is_in_transaction() and not conn.is_closed():
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def _run_or_rollback(conn: Connection, statement: Any) -> None:
    try:
        await statement
    except BaseException:
        if conn.is_in_transaction() and not conn.is_closed():
            await conn.execute("ROLLBACK")
        raise


def returned_row(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of an `INSERT … RETURNING` (or an upsert), which always returns one."""
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row
