"""Settings and clean-up for the actor tests (they share the session's local Ray)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.config import (
    ActorsSettings,
    DriftSettings,
    RaySettings,
    Settings,
    ThresholdSettings,
    WindowSettings,
)
from pdm_ray.streaming import Batch


def small_settings(home: Path, **actors: object) -> Settings:
    """l_s = 5, detector windows of 3 x 10 points, snapshot every 4 batches, namespace pdm-test."""
    base = {
        "buffer_size": 200,
        "snapshot_every": 4,
        "quality_every": 2,
        "quality_window": 50,
        "drift_reference_size": 40,
    }
    base.update(actors)
    return Settings(
        home=home,
        windows=WindowSettings(l_s=5, n_predictions=1),
        threshold=ThresholdSettings(
            batch_size=10, window_size=3, smoothing_perc=0.1, error_buffer=2, warmup=5, ignore_first=10
        ),
        drift=DriftSettings(min_samples=20, current_size=30),
        actors=ActorsSettings(**base),
        ray=RaySettings(namespace="pdm-test"),
    )


def sine_batches(n_readings: int, size: int, spike_at: int | None = None) -> list[Batch]:
    """A noisy sine wave and one command column in batches of ``size``; seq = batch number."""
    rng = np.random.default_rng(1)
    t = np.arange(n_readings, dtype=np.float64)
    values = np.zeros((n_readings, 2), np.float32)
    values[:, 0] = np.sin(t / 5.0) + 0.01 * rng.standard_normal(n_readings)
    values[:, 1] = (t % 7 == 0).astype(np.float32)
    if spike_at is not None:
        values[spike_at : spike_at + 3, 0] += 4.0
    return [Batch(i, 1000.0 + t[s : s + size], values[s : s + size]) for i, s in enumerate(range(0, n_readings, size))]


@pytest.fixture
def ray_actors(ray_cluster: None) -> Iterator[None]:
    """The session's Ray; every named actor a test leaves in ``pdm-test`` is killed afterwards."""
    import ray
    from ray.util import list_named_actors

    before = set(list_named_actors())
    yield
    for name in set(list_named_actors()) - before:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace="pdm-test"), no_restart=True)
