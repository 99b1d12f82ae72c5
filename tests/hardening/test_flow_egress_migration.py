"""An organization that had `allow_private_http: true` before the egress guard keeps reaching
the private ranges its flows used (loopback, RFC 1918, unique-local) after the migration, but
not link-local metadata addresses; other organizations get an empty allow-list."""

from __future__ import annotations

import ipaddress
import json
import secrets

import asyncpg

from aico.egress import EgressAllowlist, refusal_reason
from db.migrate import apply_migrations, migration_files


async def test_allow_private_http_becomes_an_allowlist_of_private_ranges(pg_dsn):
    name = "mig_egress_" + secrets.token_hex(4)
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg_dsn.replace("/postgres?", f"/{name}?"))
    try:
        # The schema as it was before the egress allow-list existed.
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")
        for file, sql in migration_files():
            if file < "0020":
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", file)
        legacy = await conn.fetchval(
            "INSERT INTO organizations (slug, name, settings) VALUES ('legacy', 'legacy', $1)"
            " RETURNING id", json.dumps({"allow_private_http": True, "locale": "en"}))
        plain = await conn.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ('plain', 'plain') RETURNING id")

        applied = await apply_migrations(conn)
        assert "0020_egress_allowlist.sql" in applied

        rows = {r["org_id"]: list(r["hosts"]) for r in await conn.fetch(
            "SELECT org_id, hosts FROM egress_allowlists")}
        assert set(rows) == {legacy}
        settings = json.loads(await conn.fetchval(
            "SELECT settings::text FROM organizations WHERE id = $1", legacy))
        assert settings == {"locale": "en"}
        assert plain not in rows
    finally:
        await conn.close()
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    allowlist = EgressAllowlist.parse(rows[legacy])
    for reachable in ("127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "::1", "fd00::7"):
        assert allowlist.allows_address(ipaddress.ip_address(reachable)), reachable
    for refused in ("169.254.169.254", "100.100.100.200", "fe80::1"):
        address = ipaddress.ip_address(refused)
        assert not allowlist.allows_address(address) and refusal_reason(address), refused
