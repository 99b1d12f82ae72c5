"""Voice call fixtures: the API served by uvicorn on a loopback port (WebSockets need a real
server), the offline models loaded once for the whole run (the pipeline and the tests share
them through `providers.runtime`), a caller voice made with Piper (16 kHz), and a Whisper ear
(`voice_support`, shared with the phone tests).

The voice tests pin where the models run (`AICO_MODELS=inprocess`, and the same in the
server's settings), so a call takes the same path whatever other test packages left running
(a `models` Serve app would otherwise be picked up by `auto`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from voice_support import MODELS_MODE, Voices, models_mode, served, warm_call_models

from actors.host import LocalVoiceHost
from aico.settings import ModelSettings, Settings


@pytest.fixture(autouse=True, scope="module")
def _pinned_models_mode() -> Iterator[None]:
    with models_mode(MODELS_MODE):
        yield


# The `models` Serve app as the voice tests on Serve deploy it (left running for the rest of the
# run, like tests/providers' fixture leaves it).
MODELS_APP_PROVIDERS = {
    "stt": {"kind": "faster-whisper"}, "llm": {"kind": "llamacpp", "temperature": 0.0},
    "tts": {"kind": "piper"}, "embeddings": {"kind": "minilm"}}


@pytest.fixture(scope="module")
def models_on_serve(ray_cluster: None) -> Iterator[None]:
    """The models on Ray Serve (`AICO_MODELS=serve` for the module's calls)."""
    from ray import serve

    from providers.runtime import forget_models
    from serve_apps.models import build_models_app

    app = serve.status().applications.get("models")
    if app is None or app.status != "RUNNING":
        serve.run(build_models_app(providers=MODELS_APP_PROVIDERS), name="models",
                  route_prefix=None)
    forget_models()
    with models_mode("serve"):
        yield
    forget_models()


@dataclass
class VoiceServer:
    base_ws: str
    app: Any

    def ws_url(self, voice: dict[str, Any]) -> str:
        path = voice["url"].split("/v1/", 1)[1]
        return f"{self.base_ws}/v1/{path}"


@pytest.fixture(scope="session")
async def voice_models() -> Any:
    return await warm_call_models()


@pytest.fixture(scope="session")
def voice_settings(settings: Settings) -> Settings:
    """The test settings with the models' mode pinned (passed down, not read from the env)."""
    return settings.model_copy(update={"serving": ModelSettings(mode=MODELS_MODE)})


@pytest.fixture(scope="session")
async def voice_server(voice_settings, app_pool, voice_models) -> AsyncIterator[VoiceServer]:
    """The API as it serves calls: the application role's pool, under row-level security."""
    from serve_apps.api import create_app

    app = create_app(voice_settings, pool=app_pool,
                     voice_host=LocalVoiceHost(app_pool, voice_settings))
    async with served(app, name="the voice test server") as port:
        yield VoiceServer(base_ws=f"ws://127.0.0.1:{port}", app=app)


@pytest.fixture(scope="session")
def voices(voice_models) -> Voices:
    return Voices(*voice_models, caller_rate=16000)
