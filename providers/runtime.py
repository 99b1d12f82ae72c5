"""The one way the executor and the voice session obtain providers for a session.

    llm = await open_llm(resolved["llm"], secrets=secrets)
    stt = await open_stt(resolved["stt"], secrets=secrets)

Cloud kinds are constructed with their secrets. Self-hosted kinds (faster-whisper, piper,
llamacpp, minilm) are served two ways, chosen by `AICO_MODELS`:

* `auto` (default): if this process is connected to Ray and the Serve application `models`
  (built by `serve_apps.models.build_models_app`) is running and serves the same model, the
  provider returned is a thin client that calls that deployment through a `DeploymentHandle`;
  otherwise the model is loaded in this process.
* `serve`: always use the deployment; fail if it is not running.
* `inprocess`: always load in this process (unit tests, a laptop without Ray).

An in-process model is loaded once per process and per `model_key()`, and shared by every
session's provider object; each provider object keeps its own usage totals.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from aico.errors import MissingSecrets
from aico.settings import Settings, get_settings
from providers.configs import ProviderConfig
from providers.embeddings import Embeddings
from providers.errors import ProviderConfigError
from providers.llm import ChatLLM
from providers.registry import ProviderSpec, parse_config
from providers.stt import STT
from providers.tts import TTS

log = logging.getLogger("aico.providers.runtime")

MODELS_APP = "models"
_models: dict[tuple[Any, ...], Any] = {}
_model_locks: dict[tuple[Any, ...], asyncio.Lock] = {}
# Per capability: when the `models` app was last asked, the model key it serves, its handle.
_serve_keys: dict[str, tuple[float, tuple[Any, ...] | None, Any | None]] = {}
_serve_locks: dict[str, asyncio.Lock] = {}
_SERVE_CHECK_TTL_S = 10.0
_refreshing: dict[str, asyncio.Task[Any]] = {}  # background re-checks of a stale lookup


def models_mode(settings: Settings | None = None) -> str:
    """`AICO_MODELS` of this process (validated when the settings are read)."""
    return (settings or get_settings()).serving.mode


async def open_stt(config: dict | ProviderConfig, *, secrets: Mapping[str, str]) -> STT:
    return await _open("stt", config, secrets)


async def open_llm(config: dict | ProviderConfig, *, secrets: Mapping[str, str]) -> ChatLLM:
    return await _open("llm", config, secrets)


async def open_tts(config: dict | ProviderConfig, *, secrets: Mapping[str, str]) -> TTS:
    return await _open("tts", config, secrets)


async def open_embeddings(config: dict | ProviderConfig, *,
                          secrets: Mapping[str, str]) -> Embeddings:
    return await _open("embeddings", config, secrets)


async def _open(capability: str, config: dict | ProviderConfig, secrets: Mapping[str, str]):
    spec, cfg = parse_config(capability, config)
    missing = [name for name in cfg.required_secrets() if not secrets.get(name)]
    if missing:
        raise MissingSecrets(missing)
    cls = spec.load_class()
    if not spec.self_hosted:
        return cls.from_config(cfg, secrets=secrets)
    handle = await _deployment_handle(capability, cfg)
    if handle is not None:
        from providers.serve_clients import serve_client

        return await serve_client(capability, cls, cfg, handle)
    return cls(cfg, model=await load_model(spec, cfg))


async def load_model(spec: ProviderSpec, cfg: ProviderConfig) -> Any:
    """The in-process model for `cfg`, loaded once per process (in a thread: loading blocks)."""
    key = cfg.model_key()
    if key in _models:
        return _models[key]
    lock = _model_locks.setdefault(key, asyncio.Lock())
    async with lock:
        if key not in _models:
            cls = spec.load_class()
            started = time.perf_counter()
            _models[key] = await asyncio.to_thread(cls.load_model, cfg)
            log.info("loaded %s %s model in %.2fs", spec.capability, spec.kind,
                     time.perf_counter() - started)
    return _models[key]


def load_provider_sync(capability: str, config: dict | ProviderConfig) -> Any:
    """An in-process self-hosted provider for a deployment's `__init__`: blocking, uncached."""
    spec, cfg = parse_config(capability, config)
    if not spec.self_hosted:
        raise ProviderConfigError(f"{capability} kind {cfg.kind} is not self-hosted")
    cls = spec.load_class()
    return cls(cfg, model=cls.load_model(cfg))


async def _deployment_handle(capability: str, cfg: ProviderConfig) -> Any | None:
    mode = models_mode()
    if mode == "inprocess":
        return None
    handle, served_key = await _serve_lookup(capability)
    if handle is not None and served_key == cfg.model_key():
        return handle
    if mode == "serve":
        raise ProviderConfigError(
            f"AICO_MODELS=serve but the '{MODELS_APP}' Serve app does not serve this "
            f"{capability} model ({cfg.kind})", provider=cfg.kind)
    if handle is not None:
        log.warning("%s deployment serves another model than requested; loading in-process",
                    capability)
    return None


async def models_app_handle(capability: str) -> Any | None:
    """The running `models` app's deployment for `capability`, or None: the lookup sessions use
    (cached, off the event loop)."""
    handle, _ = await _serve_lookup(capability)
    return handle


async def _serve_lookup(capability: str) -> tuple[Any | None, tuple[Any, ...] | None]:
    """The `models` app's handle for `capability` and the model key it serves, or Nones.

    Asked of the Serve controller at most once per `_SERVE_CHECK_TTL_S` per capability (one
    asker at a time; the others wait for its answer), and off the event loop: `serve.status()`
    and a first `get_deployment_handle` block on the controller, and this loop carries calls.
    Once that time has passed, a handle found before is still returned at once while the
    controller is asked again in the background."""
    try:
        import ray
    except ImportError:
        return None, None
    if not ray.is_initialized():
        return None, None
    cached = _fresh_lookup(capability)
    if cached is not None:
        return cached
    stale = _serve_keys.get(capability)
    if stale is not None and stale[2] is not None:
        # A deployment served it: keep using it while the controller is asked again in the
        # background (under load that round trip took 150-230 ms of a call's connect).
        if capability not in _refreshing:
            task = asyncio.get_running_loop().create_task(_ask_controller(capability))
            _refreshing[capability] = task
            task.add_done_callback(lambda _: _refreshing.pop(capability, None))
        return stale[2], stale[1]
    return await _ask_controller(capability)


async def _ask_controller(capability: str) -> tuple[Any | None, tuple[Any, ...] | None]:
    async with _serve_locks.setdefault(capability, asyncio.Lock()):
        cached = _fresh_lookup(capability)  # another session asked while this one waited
        if cached is not None:
            return cached
        key: tuple[Any, ...] | None = None
        handle = None
        try:
            known = _serve_keys.get(capability)
            handle = await asyncio.to_thread(_running_deployment_handle, capability,
                                             known[2] if known else None)
            if handle is not None:
                key = tuple(await handle.model_key.remote())
        except Exception as err:  # noqa: BLE001 - no Serve, or not reachable: load in-process
            log.debug("no %s deployment: %s", capability, err)
            handle, key = None, None
        _serve_keys[capability] = (time.monotonic(), key, handle if key else None)
        return (handle if key else None), key


def _fresh_lookup(capability: str) -> tuple[Any | None, tuple[Any, ...] | None] | None:
    checked = _serve_keys.get(capability)
    if checked is None or time.monotonic() - checked[0] >= _SERVE_CHECK_TTL_S:
        return None
    return checked[2], checked[1]


def _running_deployment_handle(capability: str, known: Any | None = None) -> Any | None:
    """(Blocking: run in a thread.) The handle of `capability` in the running `models` app:
    `known` (the one found before) while the app still serves it."""
    from ray import serve

    app = _models_app_status()
    if app is None or capability not in app.deployments or app.status != "RUNNING":
        return None
    return known or serve.get_deployment_handle(capability, app_name=MODELS_APP)


_app_status: tuple[float, Any] | None = None
_app_status_lock = threading.Lock()


def _models_app_status() -> Any | None:
    """(Blocking.) The `models` app's status, asked of the controller at most every
    `_SERVE_CHECK_TTL_S / 2` for all capabilities together (`serve.status()` costs a call
    actor ≈25 ms of CPU: asked per capability every 10 s it was ≈5 % of the actor's CPU)."""
    from ray import serve

    global _app_status
    with _app_status_lock:
        if _app_status is None or time.monotonic() - _app_status[0] >= _SERVE_CHECK_TTL_S / 2:
            _app_status = (time.monotonic(), serve.status().applications.get(MODELS_APP))
        return _app_status[1]


def forget_models() -> None:
    """Drop cached in-process models and Serve lookups (tests)."""
    _models.clear()
    _model_locks.clear()
    _serve_keys.clear()
    _serve_locks.clear()
    global _app_status
    _app_status = None
