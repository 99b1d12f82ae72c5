"""The STT and TTS of one call: the session's pinned provider configs, opened through
`providers.runtime` (Serve deployment handles when the `models` app runs, in-process models
otherwise), with the organization's secrets they name."""

from __future__ import annotations

from typing import Any

import asyncpg

from providers import runtime
from providers.registry import parse_config
from providers.stt import STT
from providers.tts import TTS

DEFAULT_STT: dict[str, Any] = {"kind": "faster-whisper"}
DEFAULT_TTS: dict[str, Any] = {"kind": "piper"}


def call_configs(providers: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    configs = (providers or {}).get("configs") or {}
    return dict(configs.get("stt") or DEFAULT_STT), dict(configs.get("tts") or DEFAULT_TTS)


async def open_call_providers(pool: asyncpg.Pool | None, *, org_id: Any,
                              providers: dict[str, Any] | None) -> tuple[STT, TTS]:
    stt_config, tts_config = call_configs(providers)
    names = (parse_config("stt", stt_config)[1].required_secrets()
             + parse_config("tts", tts_config)[1].required_secrets())
    secrets: dict[str, str] = {}
    if names and pool is not None:
        from providers.secrets import load_secrets

        secrets = await load_secrets(pool, org_id=org_id, names=names)
    stt = await runtime.open_stt(stt_config, secrets=secrets)
    tts = await runtime.open_tts(tts_config, secrets=secrets)
    return stt, tts


async def warm_default_providers(*, llm: bool = False) -> tuple[STT, TTS]:
    """Load (and exercise once) the default self-hosted models, so a call pays none of it."""
    stt, tts = await open_call_providers(None, org_id=None, providers=None)
    await stt.recognize(b"\0\0" * 8000, sample_rate=16000)
    async for _ in tts.synthesize("Hello."):
        pass
    if llm:
        from flows.session_providers import DEFAULT_LLM
        from providers.llm import ChatMessage

        model = await runtime.open_llm(dict(DEFAULT_LLM), secrets={})
        async for _ in model.chat([ChatMessage(role="user", content="Hi")], max_tokens=2):
            pass
    load_vad()
    return stt, tts


def load_vad() -> Any:
    """The process's Silero VAD (its model file is located without importing the livekit
    plugin, so this is safe off the main thread, e.g. in a Ray actor)."""
    from providers.vad import SileroVAD

    return SileroVAD.load()
