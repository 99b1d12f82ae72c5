"""The `vllm` provider: Ray Serve LLM config building (vLLM cannot run here) and its client."""

from __future__ import annotations

import importlib.util

import pytest

from providers.configs import VLLMConfig
from providers.errors import ProviderConfigError
from providers.llm import ChatMessage
from providers.runtime import open_llm
from providers.vllm_llm import build_vllm_app, llm_config_kwargs

CONFIG = VLLMConfig(model="Qwen/Qwen2.5-7B-Instruct", served_name="qwen", accelerator_type="H100",
                    tensor_parallel_size=2, max_model_len=8192, min_replicas=1, max_replicas=4,
                    engine_kwargs={"enable_prefix_caching": True})
HAS_SERVE_LLM = importlib.util.find_spec("vllm") is not None


def test_the_llm_config_carries_model_resources_and_autoscaling():
    assert llm_config_kwargs(CONFIG) == {
        "model_loading_config": {"model_id": "qwen", "model_source": "Qwen/Qwen2.5-7B-Instruct"},
        "accelerator_type": "H100",
        "deployment_config": {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4}},
        "engine_kwargs": {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9,
                          "max_model_len": 8192, "enable_prefix_caching": True},
    }
    minimal = llm_config_kwargs(VLLMConfig(model="m"))
    assert minimal["model_loading_config"] == {"model_id": "m", "model_source": "m"}
    assert "accelerator_type" not in minimal and "max_model_len" not in minimal["engine_kwargs"]


@pytest.mark.skipif(HAS_SERVE_LLM, reason="vLLM is installed: the app builds instead")
def test_without_the_gpu_extra_building_the_app_says_what_to_install():
    with pytest.raises(ProviderConfigError, match="gpu extra"):
        build_vllm_app(CONFIG)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_SERVE_LLM, reason="needs the gpu extra (ray[llm], vLLM)")
def test_with_the_gpu_extra_the_openai_app_builds():
    from ray.serve.llm import LLMConfig

    LLMConfig(**llm_config_kwargs(CONFIG))  # validates against Ray's own schema
    assert build_vllm_app(CONFIG) is not None


@pytest.mark.slow
async def test_sessions_reach_it_as_an_openai_compatible_server(smollm):
    # llama.cpp's server stands in for the vLLM app: both speak /v1/chat/completions.
    llm = await open_llm({"kind": "vllm", "model": "some/weights", "served_name": "smol",
                          "base_url": smollm.listening_address + "/v1", "temperature": 0.0},
                         secrets={})
    reply = await llm.complete([ChatMessage(role="user", content="Say hi.")], max_tokens=10)
    await llm.aclose()
    assert reply.text.strip() and llm.model_id == "smol"
