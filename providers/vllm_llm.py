"""LLM `vllm`: a vLLM engine on GPU workers, deployed with Ray Serve LLM (`ray.serve.llm`).

Two halves:
* `build_vllm_app(config)` turns an AICO `vllm` config into Ray Serve LLM's `LLMConfig` and
  returns `build_openai_app(...)`: an app serving `/v1/chat/completions` (and embeddings,
  transcriptions) from vLLM. Deploy it next to `models`, e.g.
  `serve.run(build_vllm_app(cfg), name="llm-vllm", route_prefix=cfg.route_prefix)`.
  It needs the `gpu` extra (`ray[llm]`, which brings vLLM and CUDA): on a CPU-only install
  the import is refused with a clear error, and only the config building is tested.
* `VLLMChatLLM` is what sessions use: the OpenAI-compatible adapter pointed at that app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.configs import VLLMConfig
from providers.errors import ProviderConfigError
from providers.openai_client import make_client
from providers.openai_llm import OpenAICompatibleLLM

DEFAULT_SERVE_URL = "http://127.0.0.1:8000"


def served_model_id(config: VLLMConfig) -> str:
    return config.served_name or config.model


def llm_config_kwargs(config: VLLMConfig) -> dict[str, Any]:
    """The keyword arguments of `ray.serve.llm.LLMConfig` for this config (plain data)."""
    engine: dict[str, Any] = {
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
    }
    if config.max_model_len:
        engine["max_model_len"] = config.max_model_len
    engine.update(config.engine_kwargs)
    kwargs: dict[str, Any] = {
        "model_loading_config": {"model_id": served_model_id(config),
                                 "model_source": config.model},
        "deployment_config": {"autoscaling_config": {
            "min_replicas": config.min_replicas, "max_replicas": config.max_replicas}},
        "engine_kwargs": engine,
    }
    if config.accelerator_type:
        kwargs["accelerator_type"] = config.accelerator_type
    return kwargs


def build_vllm_app(config: VLLMConfig | dict[str, Any]) -> Any:
    """The Ray Serve LLM application (OpenAI routes) for a `vllm` config."""
    if isinstance(config, dict):
        config = VLLMConfig.model_validate(config)
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as err:
        raise ProviderConfigError(
            f"the vllm provider needs the gpu extra (pip install 'aico[gpu]'): {err}",
            provider="vllm") from None
    return build_openai_app({"llm_configs": [LLMConfig(**llm_config_kwargs(config))]})


class VLLMChatLLM(OpenAICompatibleLLM):
    kind = "vllm"

    @classmethod
    def from_config(cls, config: VLLMConfig, *,  # type: ignore[override]
                    secrets: Mapping[str, str]) -> VLLMChatLLM:
        base_url = config.base_url or f"{DEFAULT_SERVE_URL}{config.route_prefix.rstrip('/')}/v1"
        client = make_client(base_url=base_url, api_key_secret=None, secrets=secrets,
                             timeout_s=config.timeout_s)
        llm = cls(config, client=client)  # type: ignore[arg-type]
        return llm

    @property
    def model_id(self) -> str:
        return served_model_id(self.config)  # type: ignore[arg-type]
