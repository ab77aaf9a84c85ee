"""cluster.yaml: a valid Ray cluster-launcher config with a trial-free CPU head and a GPU worker type."""

from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def test_cluster_yaml_is_a_valid_launcher_config():
    from ray.autoscaler._private.util import prepare_config, validate_config  # here: keep Ray out of collection
    config = yaml.safe_load(CLUSTER.read_text())
    validate_config(prepare_config(config))  # Ray's JSON schema after its AWS defaults merge in, as `ray up` does
    assert config["provider"]["type"] == "aws"


def test_head_takes_no_trials_and_workers_have_gpus():
    config = yaml.safe_load(CLUSTER.read_text())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert len(workers) == 1
    gpu = workers[0]
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))  # AWS GPU families
    assert 1 <= gpu["min_workers"] <= gpu["max_workers"] <= config["max_workers"]


def test_setup_installs_the_project_and_starts_ray_with_token_auth():
    config = yaml.safe_load(CLUSTER.read_text())
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "~/initmem" in setup and config["file_mounts"]["~/initmem"] == "."
    assert "~/.ray/auth_token" in config["file_mounts"]
    for cmd in config["head_start_ray_commands"][1:] + config["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in cmd
    assert "--dashboard-host=127.0.0.1" in config["head_start_ray_commands"][1]
