"""What a voice actor loads before any call: the packaged offline models, warmed once, and the
process's VAD. A call's own providers are opened by the session service
(`flows.sessions.open_session_speech`), the one place that loads an organization's secrets."""

from __future__ import annotations

from typing import Any

from providers import runtime
from providers.stt import STT
from providers.tts import TTS


async def warm_default_providers(*, llm: bool = False) -> tuple[STT, TTS]:
    """Load (and exercise once) the default self-hosted models, so a call pays none of it."""
    from flows.sessions import default_configs

    configs = default_configs()
    stt = await runtime.open_stt(configs["stt"], secrets={})
    tts = await runtime.open_tts(configs["tts"], secrets={})
    # A model loaded here is exercised once; one served by a deployment only has the route
    # to it set up (providers.serve_clients.warm_route).
    await stt.warm()
    await tts.warm()
    if llm:
        model = await runtime.open_llm(configs["llm"], secrets={})
        await model.warm()
    load_vad()
    from actors.turns import load_end_of_turn_model
    from providers.turn_model import on_model_thread

    await on_model_thread(load_end_of_turn_model)
    return stt, tts


def load_vad() -> Any:
    """The process's Silero VAD (its model file is located without importing the livekit
    plugin, so this is safe off the main thread, e.g. in a Ray actor)."""
    from providers.vad import SileroVAD

    return SileroVAD.load()
