"""The operator's configs are what Ray and KubeRay accept: `cluster.yaml` by Ray's cluster
launcher schema, `deploy/serve.yaml` by Serve's config schema and by building its applications
from their import paths, `deploy/rayservice.yaml` by the same Serve schema for `serveConfigV2`
by Ray's own KubeRay translation (RayCluster spec → autoscaler config, validated against the
autoscaler's schema) and by KubeRay's RayService CRD schema (its `openAPIV3Schema`, vendored in
tests/scale/fixtures/ from ray-project/kuberay, see deploy/README.md), checked as
`kubectl apply --validate=strict` does: unknown fields are errors, not pruned."""

from __future__ import annotations

import copy
import importlib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import (
    _derive_autoscaling_config_from_ray_cr,
)
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).resolve().parents[2]
RAYSERVICE_SCHEMA = Path(__file__).parent / "fixtures" / "kuberay_rayservice_v1_schema.yaml"


def load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def built_deployments(app: dict[str, Any]) -> set[str]:
    module, builder = app["import_path"].split(":")
    application = call_user_app_builder_with_args_if_necessary(
        getattr(importlib.import_module(module), builder), app.get("args") or {})
    return {d.name for d in build_app(application, name=app["name"]).deployments}


def test_cluster_yaml_has_a_cpu_head_gpu_model_workers_and_call_workers():
    config = load("cluster.yaml")
    validate_config(prepare_config(config))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert "GPU" not in head["resources"] and "aico_calls" not in head["resources"]
    assert [n for n, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    calls = [t for t in types.values() if t["resources"].get("aico_calls", 0) >= 1]
    assert calls and all("GPU" not in t["resources"] for t in calls)
    assert all(isinstance(v, int) for t in types.values() for v in t["resources"].values())


def test_serve_config_validates_and_names_deployments_its_applications_have():
    config = load("deploy/serve.yaml")
    schema = ServeDeploySchema.model_validate(config)
    assert {a.name for a in schema.applications} == {"api", "models"}
    for app in config["applications"]:
        assert {d["name"] for d in app["deployments"]} <= built_deployments(app), app["name"]
    models = next(a for a in schema.applications if a.name == "models")
    for deployment in models.deployments:
        if deployment.name in ("stt", "llm", "tts"):
            scaling = deployment.autoscaling_config
            assert scaling["min_replicas"] >= 1 and scaling["max_replicas"] > \
                scaling["min_replicas"]
            assert deployment.ray_actor_options.num_gpus > 0


def test_rayservice_example_is_a_valid_serve_config_on_a_valid_ray_cluster():
    service = load("deploy/rayservice.yaml")
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    assert serve_config["applications"] == load("deploy/serve.yaml")["applications"]

    cluster = service["spec"]["rayClusterConfig"]
    autoscaling = _derive_autoscaling_config_from_ray_cr(
        {"metadata": service["metadata"], "spec": cluster})  # validates against Ray's schema
    types = autoscaling["available_node_types"]
    assert types["headgroup"]["resources"].get("GPU", 0) == 0
    assert types["gpu-models"]["resources"]["GPU"] == 1
    assert types["calls"]["resources"]["aico_calls"] == 32
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        container = group["template"]["spec"]["containers"][0]
        assert {"secretRef": {"name": "aico"}} in container["envFrom"]


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with strict field validation: an object with
    declared properties takes no others unless it preserves unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def rayservice_validator() -> jsonschema.Draft7Validator:
    schema = yaml.load(RAYSERVICE_SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader",
                                                                      yaml.SafeLoader))
    return jsonschema.Draft7Validator(strict(schema))


def schema_errors(document: dict[str, Any]) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in rayservice_validator().iter_errors(document))


def test_rayservice_example_validates_against_kuberays_rayservice_crd_schema():
    assert schema_errors(load("deploy/rayservice.yaml")) == []


@pytest.mark.parametrize("break_it, field", [
    (lambda s: s["spec"].update(serveConfig=s["spec"].pop("serveConfigV2")), "serveConfig"),
    (lambda s: s["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(replicas="two"),
     "replicas"),
    (lambda s: s["spec"]["rayClusterConfig"]["headGroupSpec"].pop("template"), "template"),
], ids=["misspelt field", "wrong type", "missing required"])
def test_the_crd_schema_rejects_a_broken_rayservice(break_it, field):
    service = copy.deepcopy(load("deploy/rayservice.yaml"))
    break_it(service)
    errors = schema_errors(service)
    assert errors and any(field in e for e in errors), errors
