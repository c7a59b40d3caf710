"""Shared fixtures: one local Ray cluster for the whole test session, fresh MLflow stores.

Starting Ray costs seconds, so every test that needs it asks for ``ray_cluster`` (and is
marked ``ray``) instead of calling ``ray.init`` itself. Creating MLflow's SQLite schema
costs tens of seconds, so it is done once per session and each ``mlflow_uri`` is a copy.
JAX runs on the CPU everywhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local Ray with 2 CPUs in namespace ``pdm-test``, shut down after the last test."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="pdm-test",
        object_store_memory=512 * 1024 * 1024,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store with the current schema, created once per session."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_uri(_mlflow_template: Path, tmp_path: Path) -> str:
    """A fresh, empty MLflow SQLite tracking/registry URI under ``tmp_path``."""
    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(_mlflow_template, db)
    return f"sqlite:///{db}"
