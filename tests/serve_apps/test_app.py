"""The Serve application as configured: configs/serve.yaml, build_app and deployment options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from pdm_ray.config import ServeAutoscalingSettings, load_settings
from serve_apps.app import BY_VALUE_MAX_BYTES, _replica_options, application, build_app, calls_in_flight, fits_by_value
from serve_apps.scoring import WindowInput

SERVE_YAML = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"


def test_serve_yaml_is_a_valid_serve_config_on_loopback_8000() -> None:
    raw = yaml.safe_load(SERVE_YAML.read_text())
    config = ServeDeploySchema.model_validate(raw)
    assert (config.http_options.host, config.http_options.port) == ("127.0.0.1", 8000)
    (app,) = config.applications
    assert app.import_path == "serve_apps.app:build_app"
    assert {d.name for d in app.deployments} == {"Api", "SensorModels"}


def test_default_settings_bind_loopback_8000() -> None:
    serve = load_settings(env={}).serve
    assert (serve.host, serve.port, serve.auth_token) == ("127.0.0.1", 8000, None)
    assert load_settings(env={"PDM_SERVE__AUTH_TOKEN": "t0k"}).serve.auth_token == "t0k"


def test_build_app_creates_the_store_once_and_binds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDM_HOME", str(tmp_path))
    app = build_app({})
    assert isinstance(app, Application)
    assert (tmp_path / "mlflow.db").is_file()  # created here, before replicas could race for it


def test_replica_options_follow_the_settings(tmp_path: Path) -> None:
    settings = load_settings(env={"PDM_HOME": str(tmp_path), "PDM_SERVE__MODEL_REPLICAS": "3"})
    assert _replica_options(settings, 3) == {
        "num_replicas": 3,
        "max_ongoing_requests": 64,
        "ray_actor_options": {"num_cpus": 0.5},
    }
    scaled = settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"model_autoscaling": ServeAutoscalingSettings()})}
    )
    assert isinstance(application(scaled), Application)
    with pytest.raises(ValueError, match="max_replicas"):
        ServeAutoscalingSettings(min_replicas=3, max_replicas=2)


def test_the_ingress_keeps_two_calls_per_model_replica_in_flight(tmp_path: Path) -> None:
    settings = load_settings(env={"PDM_HOME": str(tmp_path), "PDM_SERVE__MODEL_REPLICAS": "3"})
    assert calls_in_flight(settings.serve) == 6
    scaled = settings.serve.model_copy(update={"model_autoscaling": ServeAutoscalingSettings(max_replicas=4)})
    assert calls_in_flight(scaled) == 8  # the most replicas autoscaling may start


def test_the_ingress_module_loads_without_the_model_stack() -> None:
    """Every ``Api`` replica imports ``serve_apps.app``; JAX, Flax and MLflow's pyfunc belong to
    the ``SensorModels`` replicas (measured: 401 MB resident with them, 279 MB without)."""
    code = (
        "import sys, serve_apps.app; print(','.join(m for m in ('jax', 'flax', 'mlflow.pyfunc') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_calls_go_by_value_only_while_they_and_their_scores_fit_one_grpc_message() -> None:
    # 4 bytes a point in, about 16 back: 5 x values.nbytes, plus any command columns.
    points = BY_VALUE_MAX_BYTES // 20
    assert fits_by_value([WindowInput(np.zeros(points, np.float32))])
    assert not fits_by_value([WindowInput(np.zeros(points + 1, np.float32))])
    half = WindowInput(np.zeros(points // 2, np.float32))
    assert fits_by_value([half]) and not fits_by_value([half, half, half])  # a batch counts whole
    commands = np.zeros((points // 2, 30), np.float32)
    assert not fits_by_value([WindowInput(np.zeros(points // 2, np.float32), commands)])
