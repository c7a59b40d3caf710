from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pdm_ray.config import Settings
from pdm_ray.errors import TrackingError
from pdm_ray.tracking.runs import (
    PARENT_RUN_TAG,
    connect,
    connect_settings,
    default_artifact_location,
    end_run,
    start_parent_run,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_creates_experiment_once_with_artifacts_under_home(mlflow_uri: str, tmp_path: Path) -> None:
    artifacts = (tmp_path / "art").as_uri()
    first = connect(mlflow_uri, "exp-a", artifact_location=artifacts)
    again = connect(mlflow_uri, "exp-a", artifact_location=artifacts)
    assert first.experiment_id == again.experiment_id
    assert first.client.get_experiment(first.experiment_id).artifact_location == artifacts


def test_connect_creates_a_new_sqlite_store_in_a_missing_directory(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    tracking = connect_settings(settings)
    assert (tmp_path / "home" / "mlflow.db").is_file()
    assert tracking.uri == settings.tracking_uri
    location = tracking.client.get_experiment(tracking.experiment_id).artifact_location
    assert location == (tmp_path / "home" / "mlartifacts").resolve().as_uri()


def test_artifacts_default_next_to_a_sqlite_store_and_to_the_server_otherwise(tmp_path: Path) -> None:
    assert default_artifact_location(f"sqlite:///{tmp_path}/x/m.db") == (tmp_path / "x" / "mlartifacts").as_uri()
    assert default_artifact_location("http://127.0.0.1:5000") is None
    assert default_artifact_location("postgresql://db/mlflow") is None


def test_unreachable_http_uri_fails_with_the_uri_in_the_message() -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(TrackingError, match=f"MLflow tracking URI {uri} is unreachable"):
        connect(uri, "pdm-ray", timeout_s=1)


def test_fail_fast_settings_do_not_leak_into_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with pytest.raises(TrackingError):
        connect(f"http://127.0.0.1:{_closed_port()}", "pdm-ray", timeout_s=1)
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_parent_run_groups_children_and_ends_with_the_outcome(mlflow_uri: str) -> None:
    tracking = connect(mlflow_uri, "pdm-ray")
    parent = start_parent_run(tracking, "sweep-x", {"pdm.sweep_id": "x"}, {"model": "lstm", "num_samples": 2})
    child = tracking.client.create_run(tracking.experiment_id, tags={PARENT_RUN_TAG: parent})
    end_run(tracking, parent, "FAILED")
    run = tracking.client.get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags["pdm.sweep_id"] == "x"
    assert run.data.params == {"model": "lstm", "num_samples": "2"}
    found = tracking.client.search_runs([tracking.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent}'")
    assert [r.info.run_id for r in found] == [child.info.run_id]
