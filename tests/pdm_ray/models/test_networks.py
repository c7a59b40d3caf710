"""Network shapes, dropout only in training, and the positional encoding's values."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdm_ray.models import ModelSpec, build_network
from pdm_ray.models.networks import LSTMForecaster, TransformerForecaster, sinusoidal_encoding


@pytest.mark.parametrize(("kind", "cls"), [("lstm", LSTMForecaster), ("transformer", TransformerForecaster)])
def test_shapes_and_dropout(kind: str, cls: type, small_spec: Callable[[str], ModelSpec]) -> None:
    spec = small_spec(kind)
    net = build_network(spec)
    assert isinstance(net, cls)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, spec.l_s, spec.n_features))
    params = net.init(jax.random.PRNGKey(1), x, train=False)["params"]
    apply = jax.jit(net.apply, static_argnames="train")
    out = apply({"params": params}, x, train=False)
    assert out.shape == (5, spec.n_predictions) and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, apply({"params": params}, x, train=False))
    a = apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    b = apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
    assert not np.allclose(a, b)


def test_lstm_layers_follow_settings(small_spec: Callable[[str], ModelSpec]) -> None:
    spec = small_spec("lstm")
    net = build_network(spec)
    x = jnp.zeros((1, spec.l_s, spec.n_features))
    params = net.init(jax.random.PRNGKey(0), x, train=False)["params"]
    assert sorted(params) == ["head", "lstm_0", "lstm_1"]
    assert params["head"]["kernel"].shape == (spec.lstm.layers[-1], spec.n_predictions)


def test_sinusoidal_encoding_hand_checked() -> None:
    enc = sinusoidal_encoding(3, 4)
    assert enc.shape == (3, 4) and enc.dtype == np.float32
    # Column pairs (sin, cos) at rates 1 and 1/100 (= 10000^(-2/4)).
    expected = np.array(
        [
            [0.0, 1.0, 0.0, 1.0],
            [np.sin(1.0), np.cos(1.0), np.sin(0.01), np.cos(0.01)],
            [np.sin(2.0), np.cos(2.0), np.sin(0.02), np.cos(0.02)],
        ]
    )
    np.testing.assert_allclose(enc, expected, rtol=1e-6, atol=1e-7)
    assert sinusoidal_encoding(2, 5).shape == (2, 5)
