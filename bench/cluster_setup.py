"""The set-up that `bench/load.py` and `bench/drill.py` share: an AICO stack on Ray in this process.

    stack = BenchStack(prefix="aico-load-", nodes=[NodeSpec(num_cpus=2, calls=32)])
    await stack.start(flow=load_flow(llm=False), voice=VoiceSettings(pool_size=2))
    ...  # stack.http (authenticated), stack.port, stack.flow_id, stack.placement, stack.host
    await stack.close()

What it starts: an embedded PostgreSQL in a fresh temporary AICO home; Ray — one local node
(`ray.init`) or several nodes on this machine (`ray.cluster_utils.Cluster`, the first `NodeSpec`
is the head), each declaring `aico_calls` when it takes calls; the `models` Serve app; an
organization and an API token; call placement (`actors.call_placement`) with its warm pools; the
API in this process on a loopback port (port 0, read back); and the bench's flow, published.
Nothing here downloads: the models are the packaged offline ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# What the benches' models app serves (the LLM idles unless a flow asks it).
BENCH_PROVIDERS: dict[str, dict[str, Any]] = {
    "stt": {"kind": "faster-whisper"}, "tts": {"kind": "piper"},
    "llm": {"kind": "llamacpp", "temperature": 0.0}}


@dataclass(frozen=True)
class NodeSpec:
    """One Ray node on this machine: its CPUs and how many calls it takes (`aico_calls`)."""

    num_cpus: int = 2
    calls: int = 0

    def resources(self) -> dict[str, float]:
        return {"aico_calls": float(self.calls)} if self.calls else {}


@dataclass
class BenchStack:
    prefix: str = "aico-bench-"
    nodes: list[NodeSpec] = field(default_factory=lambda: [NodeSpec(calls=32)])
    # Force `ray.cluster_utils.Cluster` even for one node (a drill that removes nodes).
    cluster: bool = False
    env: dict[str, str] = field(default_factory=dict)
    pool_max_size: int = 20
    providers: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(BENCH_PROVIDERS))
    # Per capability `DeploymentResources` (serve_apps.models.app); None: from the settings.
    resources: dict[str, Any] | None = None

    # Set by start():
    home: Path = field(init=False)
    pg: Any = field(init=False)
    pool: Any = field(init=False)
    ray_cluster: Any = field(init=False, default=None)
    worker_nodes: list[Any] = field(init=False, default_factory=list)
    token: str = field(init=False)
    placement: Any = field(init=False)
    host: Any = field(init=False)
    app: Any = field(init=False)
    server: Any = field(init=False)
    server_task: asyncio.Task[Any] = field(init=False)
    port: int = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    flow_id: str = field(init=False)
    warm_by_node: dict[str, int] = field(init=False, default_factory=dict)

    async def start(self, *, flow: dict[str, Any], voice: Any,
                    reattach_timeout_s: float | None = None) -> None:
        from db.embedded import start_embedded_postgres
        from db.migrate import prepare_database
        from db.pool import create_pool

        self.home = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.home.chmod(0o755)
        self.pg = start_embedded_postgres(self.home / "pg", delete_on_stop=True)
        await prepare_database(self.pg.dsn)
        self.pool = await create_pool(self.pg.dsn, min_size=2, max_size=self.pool_max_size)
        env = {"AICO_HOME": str(self.home), "AICO_DATABASE_URL": self.pg.dsn,
               "AICO_MODELS": "serve", "AICO_OBSERVABILITY_METRICS_PUSH_S": "1", **self.env}
        # The bench process is the operator's shell: these become every Ray worker's settings.
        os.environ.update(env)
        os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
        self.start_ray(env)
        self.deploy_models()
        await self.start_api(voice, reattach_timeout_s=reattach_timeout_s)
        r = await self.http.post("/v1/flows", json={"name": flow["name"], "document": flow})
        r.raise_for_status()
        self.flow_id = r.json()["id"]
        (await self.http.post(f"/v1/flows/{self.flow_id}/publish")).raise_for_status()

    def start_ray(self, env: dict[str, str]) -> None:
        import ray

        head, *workers = self.nodes
        runtime_env = {"env_vars": env}
        if not workers and not self.cluster:
            # address="local": a new Ray even while another process runs a `Cluster` here
            # (ray.init would otherwise join the one in /tmp/ray/ray_current_cluster).
            ray.init(address="local", num_cpus=head.num_cpus, resources=head.resources(),
                     include_dashboard=False, runtime_env=runtime_env,
                     logging_level=logging.WARNING)
            return
        from ray.cluster_utils import Cluster

        # A `Cluster` writes its address where every plain `ray.init()` on this machine looks
        # (/tmp/ray/ray_current_cluster): other processes' test runs would join this cluster.
        # A private Ray temp dir (short: it holds Unix sockets) keeps it to this process.
        os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rb", dir="/tmp")
        self.ray_cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": head.num_cpus, "resources": head.resources(),
            "include_dashboard": False})
        self.worker_nodes = [self.ray_cluster.add_node(num_cpus=n.num_cpus,
                                                       resources=n.resources())
                             for n in workers]
        self.ray_cluster.wait_for_nodes()
        ray.init(address=self.ray_cluster.address, runtime_env=runtime_env,
                 logging_level=logging.WARNING)

    def deploy_models(self) -> None:
        from ray import serve

        from serve_apps.models import build_models_app

        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        serve.run(build_models_app(providers=self.providers, resources=self.resources),
                  name="models", route_prefix=None)

    async def start_api(self, voice: Any, *, reattach_timeout_s: float | None) -> None:
        import uvicorn

        from actors.call_placement import CallPlacement
        from actors.host import RayVoiceHost
        from aico.settings import Settings
        from db.api_clients import insert_api_client, new_token
        from db.organizations import insert_organization
        from serve_apps.api import create_app

        settings = Settings(home=self.home, database_url=self.pg.dsn)
        org = await insert_organization(self.pool, slug="bench", name="bench")
        self.token = new_token()
        await insert_api_client(self.pool, org_id=org["id"], name="bench", token=self.token)
        self.placement = CallPlacement(voice)
        self.warm_by_node = await self.placement.wait_warm(timeout_s=600)
        self.host = (RayVoiceHost(self.placement) if reattach_timeout_s is None
                     else RayVoiceHost(self.placement, reattach_timeout_s=reattach_timeout_s))
        self.app = create_app(settings.model_copy(update={"voice": voice}), pool=self.pool,
                              voice_host=self.host)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off"))
        self.server_task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.server_task.done():
                self.server_task.result()  # it failed to start: raise its error
            await asyncio.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}",
                                      headers={"Authorization": f"Bearer {self.token}"},
                                      timeout=120)

    async def caller_audio(self, *lines: str) -> dict[str, bytes]:
        """Each line spoken by Piper at 16 kHz: what the simulated callers say."""
        from actors.audio import resample_pcm16
        from providers.runtime import open_tts

        tts = await open_tts({"kind": "piper"}, secrets={})
        audio = {}
        for line in lines:
            chunks = [f.pcm16 async for f in tts.synthesize(line)]
            audio[line] = resample_pcm16(b"".join(chunks), tts.sample_rate, 16000)
        return audio

    def voice_url(self, session: dict[str, Any]) -> str:
        """The voice WebSocket of a session the API just created."""
        path = session["voice"]["url"].split("/v1/", 1)[1]
        return f"ws://127.0.0.1:{self.port}/v1/{path}"

    async def close(self) -> None:
        """Stop whatever `start` got to (also after it failed half-way: no Ray node or
        PostgreSQL is left running on the machine)."""
        import ray

        if hasattr(self, "server_task"):
            self.server.should_exit = True
            await self.server_task
        if hasattr(self, "http"):
            await self.http.aclose()
        if hasattr(self, "pool"):
            await self.pool.close()
        ray.shutdown()
        if self.ray_cluster is not None:
            self.ray_cluster.shutdown()
        if hasattr(self, "pg"):
            self.pg.stop()
