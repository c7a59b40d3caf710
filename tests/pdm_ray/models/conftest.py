"""Tiny specs, data and one trained model, shared so the jitted steps compile once per session.

Every test uses the same shapes (l_s=20, 2 features, 3 predictions, batch 32), so
``train_step`` and the forward pass hit jax's compilation cache.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pdm_ray.config import LSTMSettings, TrainSettings, TransformerSettings
from pdm_ray.data.windows import make_windows
from pdm_ray.models import ModelSpec, TrainedModel, train

L_S = 20
N_PRED = 3
N_FEATURES = 2


def _sine_series(t: int = 300, seed: int = 0) -> np.ndarray:
    steps = np.arange(t)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(t)
    return np.stack([np.sin(steps / 6.0) + noise, (steps % 25 == 0).astype(float)], axis=1).astype(np.float32)


def _small_spec(kind: str = "lstm") -> ModelSpec:
    return ModelSpec(
        kind=kind,  # type: ignore[arg-type]
        n_features=N_FEATURES,
        l_s=L_S,
        n_predictions=N_PRED,
        lstm=LSTMSettings(layers=[16, 16], dropout=0.3),
        transformer=TransformerSettings(d_model=16, num_heads=2, num_layers=1, ff_dim=32, dropout=0.1),
    )


def _fast_settings(**over: object) -> TrainSettings:
    base = {"epochs": 3, "batch_size": 32, "learning_rate": 1e-2, "patience": 10, "min_delta": 0.0, "seed": 0}
    return TrainSettings(**{**base, **over})


@pytest.fixture(scope="session")
def sine_series() -> Callable[..., np.ndarray]:
    """Factory: sine plus noise in channel 0 and a periodic command flag in channel 1, ``[t, 2]``."""
    return _sine_series


@pytest.fixture(scope="session")
def small_spec() -> Callable[[str], ModelSpec]:
    """Factory: a small ModelSpec of the given kind (l_s=20, 2 features, 3 predictions)."""
    return _small_spec


@pytest.fixture(scope="session")
def fast_settings() -> Callable[..., TrainSettings]:
    """Factory: TrainSettings for seconds-long runs (3 epochs, batch 32, lr 1e-2), with overrides."""
    return _fast_settings


@pytest.fixture(scope="session")
def windows() -> tuple[np.ndarray, np.ndarray]:
    """``X [278, 20, 2]``, ``y [278, 3]`` from the sine series."""
    return make_windows(_sine_series(), L_S, N_PRED)


@pytest.fixture(scope="session")
def trained_lstm(windows: tuple[np.ndarray, np.ndarray]) -> TrainedModel:
    x, y = windows
    return train(_small_spec("lstm"), _fast_settings(), x, y)
