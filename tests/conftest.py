"""Shared fixtures: one local Ray cluster for the whole test session.

Starting Ray costs seconds, so every test that needs it asks for ``ray_cluster`` (and is
marked ``ray``) instead of calling ``ray.init`` itself. JAX runs on the CPU everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
