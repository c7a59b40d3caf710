"""Small settings for streaming tests: l_s = 5, detector windows of 3 x 10 points."""

from __future__ import annotations

import numpy as np
import pytest

from pdm_ray.config import ActorsSettings, DriftSettings, QualitySettings, ThresholdSettings
from pdm_ray.streaming.batch import Batch
from pdm_ray.streaming.sensor import StreamSettings

L_S = 5


def stream_settings(**actors: object) -> StreamSettings:
    base = {
        "buffer_size": 200,
        "snapshot_every": 4,
        "quality_every": 2,
        "quality_window": 50,
        "drift_reference_size": 40,
    }
    base.update(actors)
    return StreamSettings(
        actors=ActorsSettings(**base),
        threshold=ThresholdSettings(
            batch_size=10, window_size=3, smoothing_perc=0.1, error_buffer=2, warmup=5, ignore_first=10
        ),
        drift=DriftSettings(min_samples=20, current_size=30),
        quality=QualitySettings(),
        l_s=L_S,
    )


def make_batches(
    n_readings: int, sizes: list[int], width: int = 2, seed: int = 0, spike_at: int | None = None
) -> list[Batch]:
    """A sine wave with one command column, cut into batches of ``sizes`` (cycled); seq = batch number."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_readings, dtype=np.float64)
    values = np.zeros((n_readings, width), np.float32)
    values[:, 0] = np.sin(t / 5.0) + 0.01 * rng.standard_normal(n_readings)
    values[:, 1:] = (t[:, None] % 7 == 0).astype(np.float32)
    if spike_at is not None:
        values[spike_at : spike_at + 3, 0] += 4.0
    batches, start, i = [], 0, 0
    while start < n_readings:
        n = min(sizes[i % len(sizes)], n_readings - start)
        batches.append(Batch(i, 100.0 + t[start : start + n], values[start : start + n]))
        start += n
        i += 1
    return batches


def persistence(window: np.ndarray) -> np.ndarray:
    """One-step persistence forecasts of channel 0 for the last ``len(window) - L_S`` rows."""
    return window[L_S - 1 : -1, 0].copy()


@pytest.fixture
def settings() -> StreamSettings:
    return stream_settings()
