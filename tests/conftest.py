"""Shared fixtures: one local Ray cluster for the whole test session, fresh MLflow stores.

Starting Ray costs seconds, so every test that needs it asks for ``ray_cluster`` (and is
marked ``ray``) instead of calling ``ray.init`` itself. The cluster runs with Serve's direct
ingress on (``serve.direct_ingress_port`` = ``DIRECT_INGRESS_PORT``, with room for several
ingress replicas), as ``pdm-ray serve`` starts it with that setting: Serve tests reach an app
through the proxy and, where they ask, straight at its ``Api`` replica. Creating MLflow's
SQLite schema costs tens of seconds, so it is done once per session and each ``mlflow_uri``
is a copy (``pdm_ray.tracking.runs.new_sqlite_store``, with its template in a cache directory of
the session's own, which the CLI's subprocesses share through ``XDG_CACHE_HOME``). JAX runs on
the CPU everywhere.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _free_port_block(n: int) -> int:
    """The first of ``n`` consecutive loopback ports that are all free now (below the ephemeral range)."""
    for first in range(21000, 29000, 97):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + n):
                    stack.enter_context(socket.create_server(("127.0.0.1", port)))
            return first
        except OSError:
            continue
    raise RuntimeError("no block of free loopback ports for Serve's direct ingress")


DIRECT_INGRESS_REPLICAS = 8
DIRECT_INGRESS_PORT = _free_port_block(DIRECT_INGRESS_REPLICAS + 1)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local Ray with 2 CPUs in namespace ``pdm-test``, shut down after the last test."""
    import ray

    from pdm_ray.config import ServeSettings
    from serve_apps.serve_env import cluster_env

    env = cluster_env(ServeSettings(direct_ingress_port=DIRECT_INGRESS_PORT, ingress_replicas=DIRECT_INGRESS_REPLICAS))
    os.environ.update(env)  # the raylet copies it at start and its workers inherit it; subprocesses of tests do not
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            namespace="pdm-test",
            object_store_memory=512 * 1024 * 1024,
            log_to_driver=False,
        )
    finally:
        for key in env:
            os.environ.pop(key, None)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def direct_ingress_ports(ray_cluster: None) -> range:
    """The loopback ports on which ``ray_cluster``'s ``Api`` replicas answer directly."""
    return range(DIRECT_INGRESS_PORT, DIRECT_INGRESS_PORT + DIRECT_INGRESS_REPLICAS + 1)


@pytest.fixture(scope="session")
def serve_port(ray_cluster: None) -> Iterator[int]:
    """Serve's HTTP proxy on a free loopback port, started once per session (a start costs ~25 s).

    Modules deploy their applications on it with ``serve.run`` and remove them with
    ``serve.delete`` when they finish, so no two modules' routes meet.
    """
    from ray import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port
    finally:
        serve.shutdown()


@pytest.fixture(scope="session", autouse=True)
def _schema_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Empty-store templates in a directory of this session's, not the user's cache."""
    from pdm_ray.environment import scoped_environ

    cache = tmp_path_factory.mktemp("cache")
    with scoped_environ({"XDG_CACHE_HOME": str(cache)}):
        yield cache


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    """A fresh, empty MLflow SQLite tracking/registry URI under ``tmp_path``."""
    from pdm_ray.tracking.runs import new_sqlite_store

    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    assert new_sqlite_store(db)
    return f"sqlite:///{db}"
