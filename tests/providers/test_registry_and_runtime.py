"""The registry, config validation, deployment resources and the runtime's choices."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aico.errors import MissingSecrets, ValidationFailed
from aico.settings import Settings
from providers.errors import ProviderConfigError
from providers.registry import REGISTRY, catalog, parse_config, required_secrets
from providers.runtime import models_mode, open_llm, open_stt
from serve_apps.models.app import DeploymentResources, deployment_resources


def test_every_registered_kind_has_a_class_that_matches_it():
    for (capability, kind), spec in REGISTRY.items():
        cls = spec.load_class()
        assert cls.kind == kind, (capability, kind)
        if spec.self_hosted:
            assert callable(getattr(cls, "load_model", None))
            assert callable(getattr(cls, "warm_up", None))
        else:
            assert callable(getattr(cls, "from_config", None))


def test_catalog_schemas_mark_secrets_by_name_only():
    openai = next(i for i in catalog() if (i["capability"], i["kind"]) == ("llm", "openai"))
    assert openai["config_schema"]["properties"]["api_key_secret"]["default"] == "OPENAI_API_KEY"
    assert required_secrets("llm", {"kind": "openai", "api_key_secret": "TEAM_KEY"}) == \
        ["TEAM_KEY"]


def test_unknown_fields_and_kinds_are_refused():
    with pytest.raises(ValidationFailed) as err:
        parse_config("tts", {"kind": "piper", "voise": "x"})
    assert err.value.details[0]["field"] == "tts.voise"
    with pytest.raises(ValidationFailed, match="unknown stt provider kind"):
        parse_config("stt", {"kind": "piper"})


async def test_opening_a_cloud_provider_without_its_secret_names_it():
    with pytest.raises(MissingSecrets) as err:
        await open_llm({"kind": "openai"}, secrets={})
    assert err.value.names == ["OPENAI_API_KEY"]


async def test_a_missing_model_path_is_a_clear_config_error(tmp_path):
    with pytest.raises(ProviderConfigError, match="Whisper model not found"):
        await open_stt({"kind": "faster-whisper", "model": str(tmp_path / "nope")}, secrets={})


def test_models_mode_is_validated(monkeypatch):
    monkeypatch.setenv("AICO_MODELS", " Serve")
    assert models_mode(Settings()) == "serve"
    monkeypatch.setenv("AICO_MODELS", "sometimes")
    with pytest.raises(ValidationError, match="AICO_MODELS"):
        Settings()


def test_deployment_resources_from_the_environment(monkeypatch):
    monkeypatch.setenv("AICO_MODEL_DEPLOYMENTS", '{"llm": {"num_gpus": 1, "max_replicas": 4}}')
    res = deployment_resources(Settings())
    assert res["llm"].options()["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2}
    assert res["stt"].options() == {"ray_actor_options": {"num_cpus": 0.25, "num_gpus": 0},
                                    "num_replicas": 1}
    assert DeploymentResources().num_gpus == 0
    assert DeploymentResources(num_gpus=0.5).options()["ray_actor_options"]["num_gpus"] == 0.5


async def test_a_failing_recognizer_releases_flush_and_reports_through_iteration():
    from providers.errors import ProviderUnavailable
    from providers.policy import CallPolicy
    from providers.stt import STT, Transcript

    class BrokenSTT(STT):
        kind = "broken"

        async def _recognize_impl(self, pcm16, *, sample_rate, language) -> Transcript:
            raise ProviderUnavailable("the model server is down", provider=self.kind)

    stt = BrokenSTT(policy=CallPolicy(max_retries=1, backoff_s=0.01))
    async with stt.stream(sample_rate=16000) as stream:
        with pytest.raises(ValueError, match="whole 2-byte samples"):
            stream.push_frame(b"\0" * 3)
        stream.push_frame(b"\0\0" * 1600)
        await stream.flush()  # returns although no final can come
        with pytest.raises(ProviderUnavailable, match="down"):
            _ = [ev async for ev in stream]
    assert stt.usage.requests == 1 and stt.usage.retries == 1
