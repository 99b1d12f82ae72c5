"""`build_models_app(settings)`: the Serve application `models` that `aico up` deploys.

One deployment per self-hosted capability in the server's default providers (faster-whisper,
llamacpp, piper, minilm by default); cloud kinds need none. Resources come from config, not
code: `settings.serving.deployments`, read from `AICO_MODEL_DEPLOYMENTS` (JSON), e.g. on a
GPU cluster:

    {"stt": {"num_gpus": 0.5}, "llm": {"num_gpus": 0.5, "max_replicas": 4}}

`max_replicas > min_replicas` turns on Serve autoscaling. Sessions reach the deployments
through `providers.runtime` (`serve.get_deployment_handle(<capability>, app_name="models")`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from aico.settings import Settings, get_settings
from providers.registry import parse_config
from providers.resolution import server_default_providers
from serve_apps.models.embeddings import EmbeddingsDeployment
from serve_apps.models.llm import LLMDeployment
from serve_apps.models.streaming_stt import StreamingSTTDeployment
from serve_apps.models.stt import STTDeployment
from serve_apps.models.tts import TTSDeployment

APP_NAME = "models"
# Deployments (Serve turns the decorated classes into `Deployment`s, which mypy cannot see).
DEPLOYMENTS: dict[str, Any] = {"stt": STTDeployment, "llm": LLMDeployment,
                               "tts": TTSDeployment, "embeddings": EmbeddingsDeployment}


class DeploymentResources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(0.25, ge=0)
    num_gpus: float = Field(0, ge=0)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(2, gt=0)
    max_ongoing_requests: int | None = Field(None, ge=1)

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}}
        if self.max_replicas > max(self.min_replicas, 1):
            opts["autoscaling_config"] = {
                "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests}
        else:
            opts["num_replicas"] = max(self.min_replicas, 1)
        if self.max_ongoing_requests:
            opts["max_ongoing_requests"] = self.max_ongoing_requests
        return opts


# Defaults under `AICO_MODEL_DEPLOYMENTS`. TTS: every call's pending sentence reaches the
# replica, whose scheduler puts replies' first sentences first (a request Serve holds back
# waits in arrival order instead).
DEFAULT_RESOURCES: dict[str, dict[str, Any]] = {"tts": {"max_ongoing_requests": 64}}


def deployment_resources(settings: Settings | None = None) -> dict[str, DeploymentResources]:
    """Per capability, from `AICO_MODEL_DEPLOYMENTS` (`settings.serving.deployments`) over
    `DEFAULT_RESOURCES`."""
    raw = (settings or get_settings()).serving.deployments
    return {cap: DeploymentResources.model_validate({**DEFAULT_RESOURCES.get(cap, {}),
                                                     **raw.get(cap, {})})
            for cap in DEPLOYMENTS}


@serve.deployment(name="models", num_replicas=1, ray_actor_options={"num_cpus": 0})
class ModelsIngress:
    """Holds the model deployments so they live in one app; reports which are up."""

    def __init__(self, **deployments: DeploymentHandle) -> None:
        self._deployments = deployments

    async def served(self) -> dict[str, list[Any]]:
        return {cap: list(await h.model_key.remote()) for cap, h in self._deployments.items()}

    def check_health(self) -> None:
        return None


def build_models_app(settings: Settings | None = None, *, providers: dict[str, Any] | None = None,
                     resources: dict[str, DeploymentResources] | None = None) -> Application:
    """The `models` application for the server's default self-hosted providers."""
    providers = providers or server_default_providers(settings)
    resources = resources or deployment_resources(settings)
    bound: dict[str, Any] = {}
    for capability, deployment in DEPLOYMENTS.items():
        config = providers.get(capability)
        if not config:
            continue
        spec, parsed = parse_config(capability, config)
        if not spec.self_hosted:
            continue
        if capability == "stt" and spec.load_class().capabilities.streaming:
            deployment = StreamingSTTDeployment  # Vosk: recognizers live in the replica
        bound[capability] = deployment.options(**resources[capability].options()).bind(
            parsed.model_dump(mode="json"))
    return ModelsIngress.bind(**bound)  # type: ignore[attr-defined]  # a Deployment
