"""Flow over organization over default, per capability."""

from __future__ import annotations

import pytest

from aico.errors import ValidationFailed
from aico.settings import Settings
from providers.resolution import resolve_providers, server_default_providers

DEFAULT = {"stt": {"kind": "faster-whisper"}, "llm": {"kind": "llamacpp", "temperature": 0.7},
           "tts": {"kind": "piper"}}
OPENAI_LLM = {"kind": "openai", "model": "gpt-4o-mini"}
VLLM_LLM = {"kind": "openai-compatible", "base_url": "http://vllm:8000/v1", "model": "qwen"}

CASES = [
    # (case, organization layer, flow layer, capability, expected kind, expected source, fields)
    ("default only", {}, {}, "llm", "llamacpp", "default", {"temperature": 0.7}),
    ("org replaces default", {"llm": OPENAI_LLM}, {}, "llm", "openai", "organization",
     {"model": "gpt-4o-mini"}),
    ("flow replaces org", {"llm": OPENAI_LLM}, {"llm": VLLM_LLM}, "llm", "openai-compatible",
     "flow", {"model": "qwen"}),
    ("flow replaces default", {}, {"tts": {"kind": "elevenlabs", "voice_id": "v1"}}, "tts",
     "elevenlabs", "flow", {"voice_id": "v1"}),
    ("flow tunes org's kind", {"llm": OPENAI_LLM}, {"llm": {"temperature": 0.1}}, "llm",
     "openai", "flow", {"model": "gpt-4o-mini", "temperature": 0.1}),
    ("org tunes default's kind", {"llm": {"kind": "llamacpp", "max_tokens": 64}}, {}, "llm",
     "llamacpp", "organization", {"temperature": 0.7, "max_tokens": 64}),
    ("other capability untouched", {"llm": OPENAI_LLM}, {"llm": VLLM_LLM}, "stt",
     "faster-whisper", "default", {}),
    ("flow wins over org per capability", {"stt": {"kind": "deepgram"}},
     {"llm": VLLM_LLM}, "stt", "deepgram", "organization", {"model": "nova-3"}),
]


@pytest.mark.parametrize(("case", "org", "flow", "capability", "kind", "source", "fields"),
                         CASES, ids=[c[0] for c in CASES])
def test_precedence(case, org, flow, capability, kind, source, fields):
    resolved = resolve_providers(flow=flow, organization=org, default=DEFAULT)
    config = resolved[capability]
    assert config["kind"] == kind
    assert resolved.sources[capability] == source
    for key, value in fields.items():
        assert config[key] == value


def test_required_secrets_come_from_the_resolved_kinds():
    resolved = resolve_providers(organization={"stt": {"kind": "deepgram"}},
                                 flow={"llm": {**OPENAI_LLM, "api_key_secret": "TEAM_OPENAI"}},
                                 default=DEFAULT)
    assert resolved.required_secrets() == ["DEEPGRAM_API_KEY", "TEAM_OPENAI"]
    assert resolve_providers(default=DEFAULT).required_secrets() == []


def test_an_invalid_layer_names_the_field():
    with pytest.raises(ValidationFailed) as err:
        resolve_providers(flow={"llm": {"temperature": 9}}, default=DEFAULT)
    assert err.value.details[0]["field"] == "llm.temperature"
    with pytest.raises(ValidationFailed, match="unknown llm provider kind"):
        resolve_providers(flow={"llm": {"kind": "gpt-by-carrier-pigeon"}}, default=DEFAULT)


def test_server_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AICO_PROVIDERS", '{"llm": {"kind": "openai"}}')
    defaults = server_default_providers(Settings())
    assert defaults["llm"] == {"kind": "openai"}
    assert defaults["stt"] == {"kind": "faster-whisper"}
