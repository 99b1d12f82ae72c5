"""First-run seed: the `demo` organization, its demo flow (published), and the dev token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg

from aico.private_files import write_private_file
from db.api_clients import (
    get_api_client_by_token,
    insert_api_client,
    new_token,
    revoke_api_clients_by_name,
)
from db.flows import insert_flow, insert_flow_version, list_flows
from db.organizations import get_organization_by_slug, insert_organization

DEV_CLIENT_NAME = "dev-token"


@dataclass
class SeedResult:
    org_id: UUID
    created_org: bool
    created_flow: bool
    token: str
    token_path: Path


async def seed_demo(pool: asyncpg.Pool, *, token_path: Path) -> SeedResult:
    from flows.demo import demo_flow_document
    from flows.document import validate_for_publish

    # Concurrent first runs are serialised by the advisory lock: one seeds, the other sees its rows.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('aico.seed'))")
        org = await get_organization_by_slug(conn, "demo")
        created_org = org is None
        if org is None:
            org = await insert_organization(conn, slug="demo", name="Demo")
        created_flow = False
        if not await list_flows(conn, org_id=org["id"], limit=1):
            document = validate_for_publish(demo_flow_document()).model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
            flow = await insert_flow(
                conn, org_id=org["id"], name=document["name"],
                description=document.get("description", ""), document=document,
            )
            await insert_flow_version(
                conn, org_id=org["id"], flow_id=flow["id"], document=document
            )
            created_flow = True

        token = token_path.read_text().strip() if token_path.exists() else ""
        valid = bool(token) and (await get_api_client_by_token(conn, token)) is not None
        if not valid:
            await revoke_api_clients_by_name(conn, org_id=org["id"], name=DEV_CLIENT_NAME)
            token = new_token()
            await insert_api_client(
                conn, org_id=org["id"], name=DEV_CLIENT_NAME, token=token, role="owner"
            )
            write_private_file(token_path, token + "\n")
    return SeedResult(org["id"], created_org, created_flow, token, token_path)
