"""The flow's choice over the organization's profiles over the server default, per capability."""

from __future__ import annotations

import pytest

from aico.errors import ValidationFailed
from aico.settings import Settings
from providers.profiles import ProviderProfile
from providers.resolution import resolve_providers, server_default_providers

DEFAULT = {"stt": {"kind": "faster-whisper"}, "llm": {"kind": "llamacpp", "temperature": 0.7},
           "tts": {"kind": "piper"}}
OPENAI = ProviderProfile(name="openai", capability="llm", default=True,
                         config={"kind": "openai", "model": "gpt-4o-mini"},
                         allowed_models=["gpt-4o"], max_tokens_cap=300)
VLLM = ProviderProfile(name="vllm", capability="llm",
                       config={"kind": "openai-compatible", "base_url": "http://vllm:8000/v1",
                               "model": "qwen"}, internal=True)
TUNED = ProviderProfile(name="short", capability="llm", config={"max_tokens": 64})
DEEPGRAM = ProviderProfile(name="dg", capability="stt", config={"kind": "deepgram"},
                           default=True)

CASES = [
    # (case, profiles, flow, capability, expected kind, expected source, fields)
    ("default only", [], {}, "llm", "llamacpp", "default", {"temperature": 0.7}),
    ("org default profile", [OPENAI], {}, "llm", "openai", "organization",
     {"model": "gpt-4o-mini"}),
    ("flow picks a profile", [OPENAI, VLLM], {"llm": {"profile": "vllm"}}, "llm",
     "openai-compatible", "flow", {"model": "qwen"}),
    ("flow tunes the org default", [OPENAI], {"llm": {"temperature": 0.1, "model": "gpt-4o"}},
     "llm", "openai", "flow", {"model": "gpt-4o", "temperature": 0.1}),
    ("a kindless profile tunes the server default", [TUNED], {"llm": {"profile": "short"}},
     "llm", "llamacpp", "flow", {"temperature": 0.7, "max_tokens": 64}),
    ("other capability untouched", [OPENAI], {"llm": {"profile": "openai"}}, "stt",
     "faster-whisper", "default", {}),
    ("per capability defaults", [DEEPGRAM, OPENAI], {"llm": {"profile": "openai"}}, "stt",
     "deepgram", "organization", {"model": "nova-3"}),
]


@pytest.mark.parametrize(("case", "profiles", "flow", "capability", "kind", "source", "fields"),
                         CASES, ids=[c[0] for c in CASES])
def test_precedence(case, profiles, flow, capability, kind, source, fields):
    resolved = resolve_providers(flow=flow, profiles=profiles, default=DEFAULT)
    config = resolved[capability]
    assert config["kind"] == kind
    assert resolved.sources[capability] == source
    for key, value in fields.items():
        assert config[key] == value


def test_guard_and_limits_follow_the_profile():
    resolved = resolve_providers(profiles=[OPENAI, VLLM, DEEPGRAM], default=DEFAULT)
    assert resolved.guarded == ("stt", "llm")  # internal profiles only skip the guard
    assert resolved.limits == {"llm": {"max_tokens": 300}}
    assert resolved.profiles == {"stt": "dg", "llm": "openai"}
    internal = resolve_providers(flow={"llm": {"profile": "vllm"}}, profiles=[VLLM],
                                 default=DEFAULT)
    assert "llm" not in internal.guarded


def test_required_secrets_come_from_the_resolved_profiles():
    resolved = resolve_providers(profiles=[DEEPGRAM, OPENAI], default=DEFAULT)
    assert resolved.required_secrets() == ["DEEPGRAM_API_KEY", "OPENAI_API_KEY"]
    assert resolve_providers(default=DEFAULT).required_secrets() == []


@pytest.mark.parametrize(("flow", "field"), [
    ({"llm": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:1/v1",
              "api_key_secret": "ANY"}}, "providers.llm.api_key_secret"),
    ({"llm": {"profile": "openai", "base_url": "http://evil.example/v1"}},
     "providers.llm.base_url"),
    ({"tts": {"kind": "elevenlabs"}}, "providers.tts.kind"),
    ({"llm": {"profile": "nope"}}, "providers.llm.profile"),
    ({"llm": {"profile": "openai", "model": "gpt-5-pro"}}, "providers.llm.model"),
    ({"llm": {"profile": "openai", "max_tokens": 301}}, "providers.llm.max_tokens"),
    ({"llm": {"profile": "openai", "voice": "alloy"}}, "providers.llm.voice"),
    ({"llm": {"temperature": 9}}, "providers.llm.temperature"),
])
def test_a_flow_may_only_pick_a_profile_and_tune_it(flow, field):
    with pytest.raises(ValidationFailed) as err:
        resolve_providers(flow=flow, profiles=[OPENAI], default=DEFAULT)
    assert err.value.details[0]["field"] == field
    assert field in err.value.message or err.value.details[0]["field"] == field


def test_a_self_hosted_voice_is_a_file_and_comes_only_from_the_admins_list():
    piper = ProviderProfile(name="voices", capability="tts", config={"kind": "piper"},
                            allowed_models=["/models/amy.onnx"])
    tuned = resolve_providers(flow={"tts": {"profile": "voices", "voice": "/models/amy.onnx"}},
                              profiles=[piper], default=DEFAULT)
    assert tuned["tts"]["voice"] == "/models/amy.onnx"
    with pytest.raises(ValidationFailed) as err:
        resolve_providers(flow={"tts": {"profile": "voices", "voice": "/etc/shadow"}},
                          profiles=[piper], default=DEFAULT)
    assert err.value.details[0]["field"] == "providers.tts.voice"
    cloud = ProviderProfile(name="oa", capability="tts", config={"kind": "openai"})
    named = resolve_providers(flow={"tts": {"profile": "oa", "voice": "nova"}},
                              profiles=[cloud], default=DEFAULT)
    assert named["tts"]["voice"] == "nova"  # a cloud voice is a name: free to tune


def test_a_flow_may_tune_the_server_default_within_its_schema():
    resolved = resolve_providers(flow={"llm": {"temperature": 0.2}}, default=DEFAULT)
    assert resolved["llm"]["temperature"] == 0.2 and resolved.sources["llm"] == "flow"
    with pytest.raises(ValidationFailed) as err:
        resolve_providers(flow={"llm": {"model": "/etc/passwd"}}, default=DEFAULT)
    assert err.value.details[0]["field"] == "providers.llm.model"


def test_server_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AICO_PROVIDERS", '{"llm": {"kind": "openai"}}')
    defaults = server_default_providers(Settings())
    assert defaults["llm"] == {"kind": "openai"}
    assert defaults["stt"] == {"kind": "faster-whisper"}
