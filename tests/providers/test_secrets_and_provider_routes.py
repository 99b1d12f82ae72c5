"""Secrets and provider configuration through the HTTP API, as the dashboard uses them."""

from __future__ import annotations

import logging

import pytest

from aico.errors import MissingSecrets
from providers.resolution import resolve_session_providers
from providers.runtime import open_llm
from providers.secrets import check_required_secrets, load_secrets

PLANTED = "sk-planted-0123456789-DO-NOT-LEAK"


async def test_secrets_are_write_only_and_never_appear_in_logs_or_responses(
        make_org, pool, settings, caplog):
    caplog.set_level(logging.DEBUG)
    org = await make_org()
    api = org.client
    seen: list[str] = []

    async def call(method: str, url: str, **kw):
        r = await api.request(method, url, **kw)
        seen.append(r.text + str(r.headers))
        return r

    r = await call("PUT", "/v1/secrets/OPENAI_API_KEY", json={"value": PLANTED})
    assert r.status_code == 201 and r.json()["name"] == "OPENAI_API_KEY"
    r = await call("PUT", "/v1/secrets/OPENAI_API_KEY", json={"value": PLANTED + "2"})
    assert r.status_code == 200
    r = await call("GET", "/v1/secrets")
    (item,) = r.json()["items"]
    assert set(item) == {"name", "created_at", "updated_at"}
    assert item["updated_at"] >= item["created_at"]
    # Reading one secret is not a route; a malformed write is refused without echoing it.
    assert (await call("GET", "/v1/secrets/OPENAI_API_KEY")).status_code in (404, 405)
    r = await call("PUT", "/v1/secrets/bad name!", json={"value": PLANTED})
    assert r.status_code == 422
    for bad in ({"value": PLANTED, "extra": 1}, {"value": [PLANTED]}, {"value": {"v": PLANTED}}):
        assert (await call("PUT", "/v1/secrets/X", json=bad)).status_code == 422
    r = await call("PUT", "/v1/secrets/EMPTY", json={"value": ""})
    assert r.status_code == 422

    # The organization switches its LLM to OpenAI; a session resolves and loads secrets.
    r = await call("PUT", "/v1/org/providers", json={"llm": {"kind": "openai"}})
    assert r.status_code == 200 and r.json()["missing_secrets"] == []
    async with pool.acquire() as conn:
        resolved = await resolve_session_providers(conn, org_id=org.id)
        await check_required_secrets(conn, org_id=org.id, resolved=resolved)
        values = await load_secrets(conn, org_id=org.id, names=resolved.required_secrets(),
                                    settings=settings)
        assert values == {"OPENAI_API_KEY": PLANTED + "2"}
        stored = await conn.fetchval("SELECT ciphertext FROM secrets WHERE org_id = $1", org.id)
        assert PLANTED.encode() not in bytes(stored)
    llm = await open_llm(resolved["llm"], secrets=values)
    assert PLANTED not in repr(llm.config) + repr(resolved.to_json())

    r = await call("DELETE", "/v1/secrets/OPENAI_API_KEY")
    assert r.status_code == 204
    assert (await call("DELETE", "/v1/secrets/OPENAI_API_KEY")).status_code == 404
    r = await call("GET", "/v1/org/providers")
    assert r.json()["missing_secrets"] == ["OPENAI_API_KEY"]

    for text in seen:
        assert PLANTED not in text
    logged = "\n".join(f"{rec.getMessage()} {rec.args} {rec.exc_text}" for rec in caplog.records)
    assert PLANTED not in logged


async def test_a_session_missing_a_secret_gets_412_naming_it(make_org, pool):
    org = await make_org()
    await org.client.put("/v1/org/providers", json={"stt": {"kind": "deepgram"}})
    async with pool.acquire() as conn:
        resolved = await resolve_session_providers(
            conn, org_id=org.id, flow={"tts": {"kind": "elevenlabs"}})
        with pytest.raises(MissingSecrets) as err:
            await check_required_secrets(conn, org_id=org.id, resolved=resolved)
    assert err.value.status == 412
    assert err.value.to_body()["error"] == "missing_secrets"
    assert err.value.to_body()["missing"] == ["DEEPGRAM_API_KEY", "ELEVEN_API_KEY"]


async def test_members_cannot_write_secrets_and_orgs_do_not_see_each_other(make_org):
    admin = await make_org()
    member = await make_org(role="editor")
    assert (await member.client.put("/v1/secrets/K", json={"value": "v"})).status_code == 403
    assert (await admin.client.put("/v1/secrets/K", json={"value": "v"})).status_code == 201
    other = await make_org()
    assert (await other.client.get("/v1/secrets")).json()["items"] == []
    assert (await other.client.delete("/v1/secrets/K")).status_code == 404


async def test_catalog_lists_every_kind_with_its_json_schema(api):
    r = await api.get("/v1/providers")
    assert r.status_code == 200
    items = {(i["capability"], i["kind"]): i for i in r.json()["items"]}
    assert {("stt", "faster-whisper"), ("tts", "piper"), ("llm", "llamacpp"),
            ("embeddings", "minilm"), ("stt", "deepgram"), ("tts", "elevenlabs"),
            ("llm", "openai"), ("llm", "vllm")} <= set(items)
    deepgram = items[("stt", "deepgram")]
    assert deepgram["required_secrets"] == ["DEEPGRAM_API_KEY"]
    assert deepgram["config_schema"]["properties"]["model"]["default"] == "nova-3"


async def test_org_provider_layer_round_trips_and_bad_configs_are_refused(api):
    r = await api.put("/v1/org/providers",
                      json={"llm": {"kind": "openai-compatible", "model": "qwen",
                                    "base_url": "http://vllm:8000/v1"},
                            "tts": {"length_scale": 1.2}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolved"]["llm"]["kind"] == "openai-compatible"
    assert body["resolved"]["tts"] == {**body["resolved"]["tts"], "kind": "piper",
                                       "length_scale": 1.2}
    assert body["sources"] == {"stt": "default", "llm": "organization", "tts": "organization",
                               "embeddings": "default"}
    assert (await api.get("/v1/org/providers")).json()["providers"] == body["providers"]

    r = await api.put("/v1/org/providers", json={"llm": {"kind": "openai-compatible"}})
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["details"]} >= {"llm.base_url", "llm.model"}
    r = await api.put("/v1/org/providers", json={"sst": {"kind": "piper"}})
    assert r.status_code == 422
    # The refused writes changed nothing; an empty layer clears it.
    assert (await api.get("/v1/org/providers")).json()["providers"] == body["providers"]
    r = await api.put("/v1/org/providers", json={})
    assert r.json()["providers"] == {}
