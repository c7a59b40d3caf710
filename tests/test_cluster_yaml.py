"""cluster.yaml must be a valid Ray cluster-launcher file (checked against Ray's own schema)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def validate_config(config: dict) -> None:
    jsonschema.validate(config, SCHEMA)


def test_cluster_yaml_validates_against_ray_schema() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(config)  # raises ValueError / jsonschema.ValidationError when invalid
    assert config["provider"]["type"] == "local"
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])


def test_cluster_yaml_starts_ray_with_the_default_serve_switches() -> None:
    """What ``connect_ray`` gives a local Ray (``serve_apps.serve_env.cluster_env``), ``ray start`` gets here."""
    from pdm_ray.config import ServeSettings
    from serve_apps.serve_env import cluster_env

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2
    for key, value in cluster_env(ServeSettings()).items():
        assert all(f"{key}={value} " in c for c in starts), key


def test_cluster_yaml_leaves_the_local_venv_state_and_caches_behind() -> None:
    """A copied .venv runs this machine's interpreter (shebangs), and its ``.installed`` skips ``make install``."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    excluded = set(config["rsync_exclude"])
    assert {".venv/", ".pdm_ray/", "out/", ".git/", ".dvc/cache/", "__pycache__/", ".pytest_cache/"} <= excluded
    ignored = {line for line in (ROOT / ".gitignore").read_text().splitlines() if line and not line.startswith("#")}
    assert ignored <= excluded, "whatever git ignores is local too"


def test_cluster_yaml_runs_ray_from_the_venv_that_setup_builds() -> None:
    """``make install`` builds .venv in the mounted project; nothing puts .venv/bin on PATH, so a bare ``ray`` fails."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    (project,) = config["file_mounts"]
    assert config["setup_commands"] == [f"cd {project} && make install"]
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert [c.split(" && ")[-1].split()[:2] for c in commands if "ray stop" in c] == [[".venv/bin/ray", "stop"]] * 2
    for command in commands:
        assert f"cd {project} && " in command
        assert not re.search(r"(^|[\s;&])ray\s", command), command  # every ray is .venv/bin/ray


def test_cluster_yaml_schema_check_rejects_broken_file() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["provider"] = "not-a-mapping"
    try:
        validate_config(config)
    except Exception as exc:  # jsonschema.ValidationError
        assert "provider" in str(exc)
    else:
        raise AssertionError("validate_config accepted a broken provider section")
