"""The LSTM layer: hand-computed cell, and its hand-written backward pass against autodiff."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.models.lstm import LSTMLayer, _scan, lstm_scan


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_one_unit_hand_computed() -> None:
    # One unit, two steps; gate order i, f, u, o.
    w_x = jnp.array([[0.5, -0.3, 0.8, 0.2]])
    w_h = jnp.array([[0.1, 0.4, -0.6, 0.3]])
    b = jnp.array([0.0, 1.0, 0.1, -0.2])
    x = jnp.array([[[1.0]], [[-2.0]]])  # [T=2, B=1, F=1]
    h, c, expected = 0.0, 0.0, []
    for x_t in (1.0, -2.0):
        g = [x_t * float(w_x[0, k]) + h * float(w_h[0, k]) + float(b[k]) for k in range(4)]
        i, f, u, o = _sigmoid(g[0]), _sigmoid(g[1]), math.tanh(g[2]), _sigmoid(g[3])
        c = f * c + i * u
        h = o * math.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(np.asarray(lstm_scan(x, w_x, w_h, b))[:, 0, 0], expected, rtol=1e-6)


def _grads(fn: Callable[..., jax.Array]) -> Callable[..., tuple[jax.Array, ...]]:
    def loss(x: jax.Array, w_x: jax.Array, w_h: jax.Array, b: jax.Array, weights: jax.Array) -> jax.Array:
        return jnp.sum(weights * jnp.sin(fn(x, w_x, w_h, b)))  # a loss that uses every step

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))


_ours = _grads(lstm_scan)
_autodiff = _grads(lambda *a: _scan(*a, save=False))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 2.0))
def test_backward_matches_autodiff(seed: int, scale: float) -> None:
    # One shape (T=6, B=3, F=4, H=5) so both gradients compile once; values vary.
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    args = (
        jax.random.normal(keys[0], (6, 3, 4)),
        scale * jax.random.normal(keys[1], (4, 20)),
        scale * jax.random.normal(keys[2], (5, 20)),
        scale * jax.random.normal(keys[3], (20,)),
        jax.random.normal(keys[4], (6, 3, 5)),
    )
    for got, want in zip(_ours(*args), _autodiff(*args), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_layer_initialisation_follows_keras() -> None:
    params = LSTMLayer(3).init(jax.random.PRNGKey(0), jnp.zeros((4, 2, 5)))["params"]
    assert params["w_x"].shape == (5, 12) and params["w_h"].shape == (3, 12)
    np.testing.assert_array_equal(params["b"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    # Orthogonal recurrent kernel: its rows are orthonormal.
    np.testing.assert_allclose(params["w_h"] @ params["w_h"].T, np.eye(3), atol=1e-5)
