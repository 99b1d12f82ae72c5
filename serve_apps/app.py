"""The Ray Serve deployment of the API: `build_api_app()` is what `aico up` runs."""

from __future__ import annotations

from ray import serve
from ray.serve import Application

from serve_apps.api import create_app

# No settings here: this module is imported by the driver too, and the app object is pickled
# to the replicas. Each replica reads its own AICO_* environment on first request.
app = create_app(from_environment=True)


@serve.deployment(name="Api", max_ongoing_requests=200)
@serve.ingress(app)
class Api:
    """The FastAPI ingress; settings reach each replica through its AICO_* environment."""


def build_api_app(*, env_vars: dict[str, str], replicas: int = 1) -> Application:
    return Api.options(  # type: ignore[attr-defined]  # @serve.deployment made it a Deployment
        num_replicas=replicas,
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env_vars}},
    ).bind()
