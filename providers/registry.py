"""The provider registry: (capability, kind) → implementation, config schema, secrets.

Implementations are named as "module:Class" and imported on first use, so listing the
catalog or validating a config never loads a model library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from aico.errors import ValidationFailed
from providers import configs as c
from providers.configs import CAPABILITIES, Capability, ProviderConfig


@dataclass(frozen=True)
class ProviderSpec:
    capability: Capability
    kind: str
    impl: str  # "module:Class"
    config_model: type[ProviderConfig]
    description: str
    # Self-hosted kinds load a model and run as a Ray Serve deployment; the rest call an API.
    self_hosted: bool = False

    @property
    def required_secrets(self) -> list[str]:
        """Secret names a config of this kind needs with its defaults."""
        return self.config_model.model_construct(kind=self.kind).required_secrets()

    def load_class(self) -> type[Any]:
        module, _, name = self.impl.partition(":")
        return getattr(importlib.import_module(module), name)


_SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec("stt", "faster-whisper", "providers.faster_whisper_stt:FasterWhisperSTT",
                 c.FasterWhisperConfig, "Whisper via CTranslate2; tiny.en ships offline",
                 self_hosted=True),
    ProviderSpec("stt", "openai", "providers.openai_stt:OpenAISTT", c.OpenAISTTConfig,
                 "OpenAI transcription API"),
    ProviderSpec("stt", "deepgram", "providers.deepgram_stt:DeepgramSTT", c.DeepgramConfig,
                 "Deepgram live streaming over WebSocket, interim results"),
    ProviderSpec("stt", "vosk", "providers.vosk_stt:VoskSTT", c.VoskConfig,
                 "Vosk (Kaldi) streaming with partial results; a Korean model ships offline",
                 self_hosted=True),
    ProviderSpec("llm", "llamacpp", "providers.llamacpp_llm:LlamaCppLLM", c.LlamaCppConfig,
                 "llama.cpp (xllamacpp) with a GGUF; SmolLM2-135M ships offline",
                 self_hosted=True),
    ProviderSpec("llm", "openai-compatible", "providers.openai_llm:OpenAICompatibleLLM",
                 c.OpenAICompatibleConfig, "any OpenAI-compatible server (vLLM, Ollama, ...)"),
    ProviderSpec("llm", "openai", "providers.openai_llm:OpenAILLM", c.OpenAILLMConfig,
                 "OpenAI chat completions"),
    ProviderSpec("llm", "vllm", "providers.vllm_llm:VLLMChatLLM", c.VLLMConfig,
                 "vLLM on GPU workers as a Ray Serve LLM deployment (gpu extra)"),
    ProviderSpec("tts", "piper", "providers.piper_tts:PiperTTS", c.PiperConfig,
                 "Piper ONNX voices; en_US joe medium ships offline", self_hosted=True),
    ProviderSpec("tts", "kokoro", "providers.kokoro_tts:KokoroTTS", c.KokoroConfig,
                 "Kokoro-82M ONNX; Japanese voices ship offline", self_hosted=True),
    ProviderSpec("tts", "openai", "providers.openai_tts:OpenAITTS", c.OpenAITTSConfig,
                 "OpenAI speech API, streamed PCM"),
    ProviderSpec("tts", "elevenlabs", "providers.elevenlabs_tts:ElevenLabsTTS",
                 c.ElevenLabsConfig, "ElevenLabs text-streaming WebSocket"),
    ProviderSpec("embeddings", "minilm", "providers.minilm_embeddings:MiniLMEmbeddings",
                 c.MiniLMConfig, "all-MiniLM-L6-v2, 384 dimensions, numpy only",
                 self_hosted=True),
    ProviderSpec("embeddings", "openai", "providers.openai_embeddings:OpenAIEmbeddings",
                 c.OpenAIEmbeddingsConfig, "OpenAI embeddings API"),
)

REGISTRY: dict[tuple[str, str], ProviderSpec] = {(s.capability, s.kind): s for s in _SPECS}


def get_spec(capability: str, kind: str) -> ProviderSpec:
    spec = REGISTRY.get((capability, kind))
    if spec is None:
        known = sorted(k for cap, k in REGISTRY if cap == capability)
        raise ValidationFailed(f"unknown {capability} provider kind {kind!r}",
                               details=[{"field": f"{capability}.kind",
                                         "message": f"known kinds: {', '.join(known)}"}])
    return spec


def parse_config(capability: str, config: dict[str, Any] | ProviderConfig
                 ) -> tuple[ProviderSpec, ProviderConfig]:
    """Validate one capability's config against its kind's schema."""
    if isinstance(config, ProviderConfig):
        return get_spec(capability, config.kind), config
    if capability not in CAPABILITIES:
        raise ValidationFailed(f"unknown capability {capability!r}")
    if not isinstance(config, dict) or not isinstance(config.get("kind"), str):
        raise ValidationFailed(f"{capability} provider config needs a 'kind'",
                               details=[{"field": f"{capability}.kind",
                                         "message": "Field required"}])
    spec = get_spec(capability, config["kind"])
    try:
        return spec, spec.config_model.model_validate(config)
    except ValidationError as err:
        # Same shape as the API's request validation errors; inputs are never echoed.
        details = [{"field": ".".join(map(str, (capability, *e["loc"]))), "message": e["msg"]}
                   for e in err.errors(include_url=False, include_input=False)]
        raise ValidationFailed(f"invalid {capability} provider config", details=details) from None


def required_secrets(capability: str, config: dict[str, Any] | ProviderConfig) -> list[str]:
    return parse_config(capability, config)[1].required_secrets()


def catalog() -> list[dict[str, Any]]:
    """What `GET /v1/providers` returns: every kind with its JSON Schema."""
    return [
        {
            "capability": s.capability,
            "kind": s.kind,
            "description": s.description,
            "self_hosted": s.self_hosted,
            "required_secrets": s.required_secrets,
            "config_schema": s.config_model.model_json_schema(),
        }
        for s in _SPECS
    ]
