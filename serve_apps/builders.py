"""Application builders for a Serve config file (`serve deploy deploy/serve.yaml`, KubeRay's
`serveConfigV2`): the same two applications `aico up` runs, built on the cluster.

Settings reach both through the application's `runtime_env.env_vars` (AICO_*); the config's
per-deployment entries (replicas, autoscaling, `ray_actor_options.num_gpus`) override what the
builders set from `AICO_MODEL_DEPLOYMENTS`, so an operator tunes either in one place.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application


def api(args: dict[str, Any]) -> Application:
    """The API ingress (`args`: `replicas`, default 1). Each replica reads AICO_* itself."""
    from serve_apps.app import Api

    return Api.options(  # type: ignore[attr-defined]  # @serve.deployment made it a Deployment
        num_replicas=int(args.get("replicas", 1)), ray_actor_options={"num_cpus": 0}).bind()


def models(args: dict[str, Any]) -> Application:
    """The model deployments of the server's default self-hosted providers (AICO_PROVIDERS),
    with resources from AICO_MODEL_DEPLOYMENTS."""
    from aico.settings import get_settings
    from serve_apps.models import build_models_app

    return build_models_app(get_settings())
