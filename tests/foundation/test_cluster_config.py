"""cluster.yaml is a valid Ray cluster launcher config with a CPU head and GPU workers."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def test_cluster_yaml_validates_against_rays_schema():
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    validate_config(prepare_config(config))  # raises on any schema violation

    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert "GPU" not in head["resources"]
    gpu_types = [name for name, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types, "no GPU worker node type"
    for t in types.values():
        assert all(isinstance(v, int) for v in t["resources"].values())
