"""The `aico` command: `aico up` runs the whole system in the foreground; Ctrl-C stops it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aico.settings import Settings, get_settings, worker_environment

T = TypeVar("T")


class StepFailed(Exception):
    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {cause}")
        self.step = step


class Progress:
    """Prints each start-up step with its duration, and which step failed and why."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        # Set by the Ctrl-C/SIGTERM handler: a library that catches the KeyboardInterrupt and
        # raises its own error (pydantic-core wraps it in a SchemaError) is still a Ctrl-C.
        self.interrupted = threading.Event()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"  … {name}", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, StepFailed)):
                raise
            if self.interrupted.is_set():
                raise KeyboardInterrupt from exc
            print(f"  ✗ {name} failed after {time.perf_counter() - t0:.1f}s: "
                  f"{type(exc).__name__}: {exc}", flush=True)
            raise StepFailed(name, exc) from exc
        print(f"  ✓ {name} ({time.perf_counter() - t0:.1f}s)", flush=True)

    def total(self) -> float:
        return time.perf_counter() - self.started


def _run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def _wait_healthy(url: str, *, timeout_s: float) -> dict[str, Any]:
    import json

    deadline = time.monotonic() + timeout_s
    last: str = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = json.loads(resp.read())
                if resp.status == 200:
                    return body
                last = f"HTTP {resp.status}"
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise TimeoutError(f"{url} not healthy after {timeout_s:.0f}s ({last})")


def cmd_up(args: argparse.Namespace) -> int:
    settings = get_settings()
    progress = Progress()
    print(f"AICO starting (home {settings.home})", flush=True)
    stop_event = threading.Event()
    cleanups: list[tuple[str, Callable[[], None]]] = []

    def interrupt(_signum: int, _frame: Any) -> None:
        progress.interrupted.set()
        raise KeyboardInterrupt

    def on_signal(_signum: int, _frame: Any) -> None:
        stop_event.set()

    # While starting, Ctrl-C/SIGTERM abort the start (and clean up what started).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)

    try:
        with progress.step("prepare home"):
            settings.home.mkdir(parents=True, exist_ok=True)
            settings.home.chmod(0o700)

        with progress.step("check the secret and signing keys"):
            from aico.signing import require_cluster_keys, signer

            # Workers on other nodes cannot share a generated key file: refuse, do not diverge.
            require_cluster_keys(settings, ray_address=settings.ray_address)
            signer(settings)  # embedded mode: $AICO_HOME/signing-key (0600) exists from here on

        database_url = settings.database_url
        if database_url is None:
            with progress.step(f"start embedded PostgreSQL in {settings.pg_dir}"):
                from db.embedded import start_embedded_postgres

                pg = start_embedded_postgres(settings.pg_dir)
                database_url = pg.dsn
                cleanups.append(("PostgreSQL", pg.stop))
        else:
            print("  · using AICO_DATABASE_URL", flush=True)

        with progress.step("create extension vector and apply migrations"):
            from db.migrate import prepare_database

            applied = _run(lambda: prepare_database(database_url))
            print(f"    {len(applied)} migration(s) applied now", flush=True)

        with progress.step("seed demo organization, flow and dev token"):
            seed = _run(lambda: _seed(database_url, settings))
            print(f"    dev token: {seed.token_path} (mode 0600)"
                  + (" — new" if seed.created_org else ""), flush=True)

        with progress.step("start Ray" + (f" (joining {settings.ray_address})"
                                         if settings.ray_address else " (local)")):
            import ray

            # A loaded 2-core machine can take well over Ray's default 30 s to register agents.
            os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
            # A local Ray takes calls on its one node; a cluster's nodes declare their own.
            calls = None if settings.ray_address else {
                settings.voice.call_resource: float(settings.voice.calls_per_node)}
            # "local": a Ray of our own even when another runs on this machine (ray.init would
            # join that one, and refuses `resources` when it does).
            ray.init(
                address=settings.ray_address or "local", include_dashboard=False, resources=calls,
                runtime_env={"env_vars": worker_environment(
                    settings, database_url=serving_database_url(settings, database_url))},
                logging_level=logging.WARNING, log_to_driver=args.verbose,
            )
            cleanups.append(("Ray", ray.shutdown))

            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, interrupt)

        with progress.step(f"deploy Serve API on {settings.host}:"
                           + (str(settings.port) if settings.port else "a free port")):
            from ray import serve

            from cli.serve_port import serve_http_port
            from serve_apps.app import build_api_app

            serve.start(http_options={"host": settings.host, "port": settings.port})
            cleanups.append(("Serve", serve.shutdown))
            if not settings.port:
                # AICO_PORT=0: the proxy took a free port; URLs the API builds must name it.
                settings = settings.model_copy(update={"port": serve_http_port()})
                print(f"    listening on {settings.host}:{settings.port}", flush=True)
            _deploy_models(settings)
            serve.run(
                build_api_app(env_vars=worker_environment(
                    settings, database_url=serving_database_url(settings, database_url)),
                              replicas=settings.api_replicas),
                name="api", route_prefix="/", blocking=False,
            )

        with progress.step("wait for /healthz"):
            health = _wait_healthy(f"http://{settings.host}:{settings.port}/healthz", timeout_s=120)
            print(f"    {health['status']}: database ok={health['database']['ok']}", flush=True)

        with progress.step("warm call actors and models on every node"):
            from actors.call_placement import CallPlacement

            # Each warm actor loads (or reaches) the models and runs them once, so the first
            # call is answered as fast as the tenth.
            warm = _run(lambda: CallPlacement(settings.voice).wait_warm(timeout_s=300))
            print(f"    {sum(warm.values())} warm call actor(s) on {len(warm)} node(s)",
                  flush=True)
        # Published flows' greetings into the TTS deployment's cache: readiness does not wait.
        threading.Thread(target=_cache_greetings, args=(database_url,), daemon=True,
                         name="aico-greetings").start()
    except StepFailed as exc:
        print(f"AICO did not start: {exc}", file=sys.stderr, flush=True)
        _cleanup(cleanups)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted while starting; stopping what started…", flush=True)
        _cleanup(cleanups)
        return 130

    # Ray installs its own handlers on init: ours go back on top.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    url = f"http://{settings.host}:{settings.port}"
    print(f"\nAICO is up in {progress.total():.1f}s: {url}", flush=True)
    print(f"  API docs:  {url}/docs", flush=True)
    print(f"  Dashboard: {url}/#token={seed.token}   (one-time sign-in link)", flush=True)
    print(f"  curl -H \"Authorization: Bearer $(cat {seed.token_path})\" {url}/v1/flows", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    while not stop_event.wait(0.5):
        pass
    print("\nStopping AICO…", flush=True)
    _cleanup(cleanups)
    print("Stopped. Data is kept in", settings.home, flush=True)
    return 0


def _deploy_models(settings: Settings) -> None:
    """Deploy the model deployments app (STT, TTS, LLM, embeddings)."""
    from ray import serve

    from serve_apps.models import build_models_app

    serve.run(build_models_app(settings), name="models", route_prefix=None, blocking=False)


def _cache_greetings(database_url: str) -> None:
    """Every published flow's greeting, synthesized into the TTS deployment's cache, so the
    first call after start plays it at once (serve_apps/greetings.py)."""
    async def work() -> int:
        from db.pool import create_pool
        from serve_apps.greetings import cache_every_published_greeting

        pool = await create_pool(database_url, min_size=1, max_size=1)  # the owner: every org
        try:
            return await cache_every_published_greeting(pool)
        finally:
            await pool.close()

    try:
        made = asyncio.run(work())
        logging.getLogger("aico.cli").info("cached %d greeting piece(s)", made)
    except Exception:  # a call synthesizes its greeting instead
        logging.getLogger("aico.cli").warning("could not cache the greetings", exc_info=True)


async def _seed(database_url: str, settings: Settings):
    from cli.seed import seed_demo
    from db.pool import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        return await seed_demo(pool, token_path=settings.dev_token_path)
    finally:
        await pool.close()


def _cleanup(cleanups: list[tuple[str, Callable[[], None]]]) -> None:
    for name, fn in reversed(cleanups):
        t0 = time.perf_counter()
        try:
            fn()
            print(f"  ✓ stopped {name} ({time.perf_counter() - t0:.1f}s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - stop the rest regardless
            print(f"  ✗ stopping {name}: {type(exc).__name__}: {exc}", flush=True)


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every organization secret under the first key of AICO_SECRET_KEY."""
    settings = get_settings()
    if not settings.security.secret_key:
        print("aico secrets rotate needs AICO_SECRET_KEY='new:<key>,<old key>' (the first key"
              " seals; the others, including the current $AICO_HOME/secret-key, still open)",
              file=sys.stderr)
        return 2
    from db.pool import create_pool
    from flows.webhook_outbox import rotate_webhook_secrets, rotate_widget_secrets
    from providers.secrets import rotate_secrets

    stop: Callable[[], None] | None = None
    database_url = settings.database_url
    if database_url is None:
        from db.embedded import start_embedded_postgres

        pg = start_embedded_postgres(settings.pg_dir)
        database_url, stop = pg.dsn, pg.stop

    async def rotate() -> Any:
        pool = await create_pool(database_url, min_size=1, max_size=2)
        try:
            done = await rotate_secrets(pool, settings=settings)
            hooks = await rotate_webhook_secrets(pool, settings=settings)
            widgets = await rotate_widget_secrets(pool, settings=settings)
            print(f"re-encrypted {hooks} webhook signing secret(s),"
                  f" {widgets} widget identity secret(s)")
            return done
        finally:
            await pool.close()

    try:
        done = _run(rotate)
    finally:
        if stop is not None:
            stop()
    print(f"re-encrypted {done.rotated} secret(s) under key {done.key_id}"
          + (f"; {done.skipped} changed meanwhile (already under the new key)"
             if done.skipped else ""))
    return 0


def serving_database_url(settings: Settings, owner_dsn: str) -> str:
    """What Ray workers and Serve replicas connect with: the application role, never the
    migrating owner (its password must not travel in their environment)."""
    from db.pool import app_database_url

    return app_database_url(settings.model_copy(update={"database_url": owner_dsn}))


def main(argv: list[str] | None = None) -> int:
    from cli.integrations import add_integration_commands

    parser = argparse.ArgumentParser(prog="aico", description="AICO voice-agent runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole system in the foreground (Ctrl-C stops it)")
    up.add_argument("--verbose", action="store_true", help="show Ray worker logs")
    up.set_defaults(func=cmd_up)
    secrets = sub.add_parser("secrets", help="organization secrets at rest")
    secrets_sub = secrets.add_subparsers(dest="secrets_command", required=True)
    rotate = secrets_sub.add_parser(
        "rotate", help="re-encrypt every secret under the first key of AICO_SECRET_KEY")
    rotate.set_defaults(func=cmd_secrets_rotate)
    add_integration_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
