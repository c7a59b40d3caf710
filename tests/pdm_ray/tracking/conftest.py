"""A tiny channel, a trained forecaster on it and a deliberately bad one, shared per session."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdm_ray.config import LSTMSettings, NormalizeSettings, TrainSettings
from pdm_ray.data.channels import Channel
from pdm_ray.data.normalize import fit_normalizer
from pdm_ray.data.windows import make_windows
from pdm_ray.models import ModelSpec, TrainedModel, train

L_S = 20
N_PRED = 2


def _series(t: int, seed: int) -> np.ndarray:
    steps = np.arange(t)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(t)
    # Offset and scale so the normalizer matters: raw values are far from z-scores.
    value = 10.0 + 3.0 * np.sin(steps / 6.0) + noise
    return np.stack([value, (steps % 25 == 0).astype(float)], axis=1).astype(np.float32)


@pytest.fixture(scope="session")
def channel() -> Channel:
    """Channel ``S-1``: train ``[300, 2]``, test ``[200, 2]``, no labels."""
    return Channel("S-1", "", _series(300, 0), _series(200, 1))


@pytest.fixture(scope="session")
def good_model(channel: Channel) -> TrainedModel:
    """A small LSTM trained for 3 epochs on the z-scored train series (normalizer attached)."""
    norm = fit_normalizer(channel.train, NormalizeSettings())
    x, y = make_windows(norm.transform(channel.train), L_S, N_PRED)
    spec = ModelSpec("lstm", channel.n_features, L_S, N_PRED, lstm=LSTMSettings(layers=[8], dropout=0.0))
    model = train(spec, TrainSettings(epochs=3, batch_size=32, learning_rate=1e-2, min_delta=0.0), x, y)
    return replace(model, normalizer=norm.to_dict())


@pytest.fixture(scope="session")
def bad_model(good_model: TrainedModel) -> TrainedModel:
    """The same network with every parameter set to 0.5: forecasts far off the series."""
    return replace(good_model, params=jax.tree.map(lambda p: jnp.full_like(p, 0.5), good_model.params))
