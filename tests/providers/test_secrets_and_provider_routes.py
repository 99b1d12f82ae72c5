"""Secrets and provider configuration through the HTTP API, as the dashboard uses them."""

from __future__ import annotations

import logging

import pytest

from aico.errors import MissingSecrets
from flows.document import parse_flow_document
from flows.sessions import resolve_session_providers
from providers.runtime import open_llm
from providers.secrets import load_secrets

PLANTED = "sk-planted-0123456789-DO-NOT-LEAK"


def profile(name: str, capability: str, config: dict, **extra) -> dict:
    return {"name": name, "capability": capability, "config": config, **extra}


def flow_with(providers: dict | None = None):
    return parse_flow_document({
        "name": "f", "providers": providers or {},
        "nodes": [{"id": "s", "type": "start"}, {"id": "e", "type": "end"}],
        "edges": [{"from": "s", "to": "e"}]})


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

    # The organization's default LLM profile is OpenAI; a session resolves and loads secrets.
    r = await call("PUT", "/v1/org/providers", json={"profiles": [
        profile("openai", "llm", {"kind": "openai"}, default=True, internal=True)]})
    assert r.status_code == 200 and r.json()["missing_secrets"] == []
    async with pool.acquire() as conn:
        resolved = await resolve_session_providers(conn, org_id=org.id, document=flow_with(),
                                                    channel="chat", settings=settings)
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


async def test_a_session_missing_a_secret_gets_412_naming_it(make_org, pool, settings):
    org = await make_org()
    r = await org.client.put("/v1/org/providers", json={"profiles": [
        profile("default", "stt", {"kind": "deepgram"}, default=True, internal=True),
        profile("eleven", "tts", {"kind": "elevenlabs"}, internal=True)]})
    assert r.status_code == 200, r.text
    async with pool.acquire() as conn:
        with pytest.raises(MissingSecrets) as err:
            await resolve_session_providers(
                conn, org_id=org.id, document=flow_with({"tts": {"profile": "eleven"}}),
                channel="voice", settings=settings)
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


async def test_org_profiles_round_trip_and_bad_profiles_are_refused(api):
    profiles = [
        profile("vllm", "llm", {"kind": "openai-compatible", "model": "qwen",
                                "base_url": "http://vllm:8000/v1"},
                allowed_models=["qwen-small"], max_tokens_cap=256, internal=True, default=True),
        profile("slow", "tts", {"length_scale": 1.2}, default=True),
    ]
    r = await api.put("/v1/org/providers", json={"profiles": profiles})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolved"]["llm"]["kind"] == "openai-compatible"
    assert body["resolved"]["tts"] == {**body["resolved"]["tts"], "kind": "piper",
                                       "length_scale": 1.2}
    assert body["sources"] == {"stt": "default", "llm": "organization", "tts": "organization",
                               "embeddings": "default"}
    assert [p["name"] for p in body["profiles"]] == ["vllm", "slow"]
    assert body["profiles"][0]["allowed_models"] == ["qwen-small"]
    assert (await api.get("/v1/org/providers")).json()["profiles"] == body["profiles"]

    bad = [
        ([profile("x", "llm", {"kind": "openai-compatible"}, internal=True)],
         {"profiles.x.config.llm.base_url", "profiles.x.config.llm.model"}),
        ([profile("x", "sst", {"kind": "piper"})], {"profiles.0.capability"}),
        ([profile("Bad Name", "llm", {"kind": "llamacpp"})], {"profiles.0.name"}),
        ([profile("a", "llm", {"kind": "llamacpp"}), profile("a", "llm", {"kind": "llamacpp"})],
         {"profiles.1.name"}),
        ([profile("a", "llm", {"kind": "llamacpp"}, default=True),
          profile("b", "llm", {"kind": "llamacpp"}, default=True)], {"profiles.1.default"}),
    ]
    for profiles_in, fields in bad:
        r = await api.put("/v1/org/providers", json={"profiles": profiles_in})
        assert r.status_code == 422, r.text
        assert {d["field"] for d in r.json()["details"]} >= fields, r.json()
    # A profile aimed at a private address is refused unless an admin marks it internal.
    r = await api.put("/v1/org/providers", json={"profiles": [profile(
        "local", "llm", {"kind": "openai-compatible", "model": "m",
                         "base_url": "http://127.0.0.1:9/v1"})]})
    assert r.status_code == 403 and r.json()["error"] == "egress_refused"
    # The refused writes changed nothing; an empty list clears the profiles.
    assert (await api.get("/v1/org/providers")).json()["profiles"] == body["profiles"]
    r = await api.put("/v1/org/providers", json={"profiles": []})
    assert r.json()["profiles"] == []


async def test_only_admins_manage_profiles(make_org):
    editor = await make_org(role="editor")
    assert (await editor.client.get("/v1/org/providers")).status_code == 403
    r = await editor.client.put("/v1/org/providers", json={"profiles": []})
    assert r.status_code == 403
