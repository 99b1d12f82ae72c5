"""Existing flows keep working: migration 0030 moves flow-level provider configs (kinds, base
URLs, secret names) into organization profiles, in drafts and in published versions, and turns
the organization's provider layer into its default profiles."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from db.migrate import migration_files
from flows.document import parse_flow_document
from providers.profiles import ProviderProfile
from providers.resolution import resolve_providers

LEGACY_LLM = {"kind": "openai-compatible", "base_url": "http://vllm:8000/v1", "model": "qwen",
              "api_key_secret": "TEAM_KEY", "temperature": 0.2}
DOCUMENT = {"name": "legacy",
            "providers": {"llm": LEGACY_LLM, "stt": {"kind": "deepgram"}},
            "nodes": [{"id": "start", "type": "start"}, {"id": "bye", "type": "end"}],
            "edges": [{"from": "start", "to": "bye"}]}


async def test_legacy_flow_providers_become_profiles(pg_dsn):
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(pg_dsn.replace("/postgres?", f"/{name}?", 1))
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        files = dict(migration_files())
        for file in sorted(files):
            if file < "0030":
                await conn.execute(files[file])
        org = await conn.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ('legacy', 'Legacy') RETURNING id")
        await conn.execute("INSERT INTO provider_configs (org_id, capability, config)"
                           " VALUES ($1, 'tts', $2)", org, {"kind": "elevenlabs"})
        flow = await conn.fetchval("INSERT INTO flows (org_id, name, draft) VALUES ($1, 'l', $2)"
                                   " RETURNING id", org, DOCUMENT)
        await conn.execute("INSERT INTO flow_versions (org_id, flow_id, version, document)"
                           " VALUES ($1, $2, 1, $3)", org, flow, DOCUMENT)

        async with conn.transaction():
            await conn.execute(files["0030_provider_profiles.sql"])

        rows = [dict(r) for r in await conn.fetch(
            "SELECT capability, name, config, allowed_models, max_tokens_cap, internal,"
            " is_default FROM provider_profiles WHERE org_id = $1", org)]
        profiles = [ProviderProfile.from_row(r) for r in rows]
        by_cap = {p.capability: p for p in profiles}
        assert by_cap["tts"].name == "default" and by_cap["tts"].default
        assert by_cap["llm"].name.startswith("flow-") and not by_cap["llm"].default
        assert by_cap["llm"].config == LEGACY_LLM
        assert by_cap["stt"].config == {"kind": "deepgram"}

        draft = await conn.fetchval("SELECT draft FROM flows WHERE id = $1", flow)
        published = await conn.fetchval("SELECT document FROM flow_versions WHERE flow_id = $1",
                                         flow)
        assert draft == published
        assert draft["providers"] == {
            "llm": {"profile": by_cap["llm"].name, "model": "qwen", "temperature": 0.2},
            "stt": {"profile": by_cap["stt"].name}}
        # The rewritten document is valid as it stands, and runs what it ran before.
        doc = parse_flow_document(published)
        resolved = resolve_providers(
            flow={c: v.model_dump(exclude_none=True) for c, v in doc.providers.items()},
            profiles=profiles, default={"stt": {"kind": "faster-whisper"},
                                        "llm": {"kind": "llamacpp"}, "tts": {"kind": "piper"}})
        assert {k: resolved["llm"][k] for k in LEGACY_LLM} == LEGACY_LLM
        assert resolved["tts"]["kind"] == "elevenlabs"
        assert resolved.required_secrets() == ["DEEPGRAM_API_KEY", "ELEVEN_API_KEY",
                                               "TEAM_KEY"]
        # Published versions are immutable again.
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await conn.execute("UPDATE flow_versions SET version = 2")
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE {name}")
        await admin.close()

