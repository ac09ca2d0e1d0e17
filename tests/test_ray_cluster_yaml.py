"""ray_cluster.yaml is a real cluster-launcher config: valid against the schema shipped inside the ray package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "ray_cluster.yaml").read_text())


def test_valid_against_rays_own_schema(config):
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)


def test_has_a_head_and_a_gpu_worker_type_that_install_this_project(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_types = [t for name, t in types.items() if name != config["head_node_type"] and t["resources"].get("GPU")]
    assert gpu_types and all(t["max_workers"] >= t["min_workers"] for t in gpu_types)
    assert any("pip install" in c and "bulk-transcribe" in c for c in config["setup_commands"])
    assert any("--head" in c for c in config["head_start_ray_commands"])
    assert any("RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"])
