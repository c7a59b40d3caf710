from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from pdm_ray.config import Settings
from pdm_ray.errors import TrackingError
from pdm_ray.tracking.runs import (
    PARENT_RUN_TAG,
    code_version,
    connect,
    connect_settings,
    default_artifact_location,
    end_run,
    new_sqlite_store,
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


def test_a_new_sqlite_store_is_a_copy_of_an_empty_store_kept_per_mlflow_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = connect(f"sqlite:///{tmp_path}/a/mlflow.db", "exp", artifact_location=(tmp_path / "art-a").as_uri())
    (template,) = (tmp_path / "cache" / "pdm-ray").glob("mlflow-*-empty.db")
    built = template.stat().st_mtime_ns
    second = connect(f"sqlite:///{tmp_path}/b/mlflow.db", "exp", artifact_location=(tmp_path / "art-b").as_uri())
    assert template.stat().st_mtime_ns == built  # reused, not rebuilt
    assert not list(template.parent.glob("*.tmp")) and not list((tmp_path / "a").glob("*.tmp"))
    umask = os.umask(0)
    os.umask(umask)
    for made in (template, tmp_path / "a" / "mlflow.db"):  # as open() makes files, not private ones
        assert made.stat().st_mode & 0o777 == 0o666 & ~umask, made

    run = first.client.create_run(first.experiment_id)
    assert second.client.search_runs([second.experiment_id]) == []  # two stores, not one
    assert first.client.get_run(run.info.run_id).info.experiment_id == first.experiment_id
    # The template holds no experiment: each store's Default one is MLflow's, made when it opened.
    assert [e.name for e in second.client.search_experiments()] == ["exp", "Default"]
    assert second.client.get_experiment(second.experiment_id).artifact_location == (tmp_path / "art-b").as_uri()


def test_new_sqlite_store_never_touches_an_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"someone else's")
    assert not new_sqlite_store(db)
    assert db.read_bytes() == b"someone else's"


def test_an_unusable_cache_leaves_the_schema_to_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    assert not new_sqlite_store(db)
    assert not db.exists() and not list(db.parent.iterdir())
    tracking = connect(f"sqlite:///{db}", "exp")
    assert tracking.client.get_experiment_by_name("exp") is not None


def test_code_version_is_the_package_version_plus_the_commit_and_needs_no_git(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    version = importlib.metadata.version("pdm-ray")
    found = code_version.__wrapped__()  # not the cached value
    if shutil.which("git") and (Path(__file__).resolve().parents[3] / ".git").exists():  # a checkout
        assert re.fullmatch(rf"{re.escape(version)}\+git\.[0-9a-f]{{40}}(\.dirty)?", found), found
    monkeypatch.setenv("PATH", "")  # no git
    assert code_version.__wrapped__() == version
