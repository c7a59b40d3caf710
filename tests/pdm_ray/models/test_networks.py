"""Network shapes, dropout only in training, and the positional encoding's values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from pdm_ray.config import TransformerSettings
from pdm_ray.models import ModelSpec, build_network
from pdm_ray.models.networks import (
    LSTMForecaster,
    SeedEnsemble,
    TransformerForecaster,
    sinusoidal_encoding,
    to_patches,
)


@pytest.mark.parametrize(("kind", "cls"), [("lstm", LSTMForecaster), ("transformer", SeedEnsemble)])
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


class _FullTransformer(TransformerForecaster):
    """The textbook encoder: every block over every step, then the head on the last one."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = nn.Dense(self.d_model, name="embed")(x) + sinusoidal_encoding(x.shape[1], self.d_model)
        for i in range(self.num_layers):
            a = nn.LayerNorm(name=f"ln_attn_{i}")(h)
            attention = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, deterministic=True, name=f"attn_{i}")
            h = h + attention(a, a)
            m = nn.LayerNorm(name=f"ln_mlp_{i}")(h)
            h = h + nn.Dense(self.d_model, name=f"mlp_out_{i}")(nn.gelu(nn.Dense(self.ff_dim, name=f"mlp_in_{i}")(m)))
        return nn.Dense(self.n_predictions, name="head")(nn.LayerNorm(name="ln_final")(h)[:, -1])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_transformer_last_block_on_the_last_step_only_gives_the_full_encoders_forecasts(num_layers: int) -> None:
    net = TransformerForecaster(d_model=16, num_heads=2, num_layers=num_layers, ff_dim=32, dropout=0.1, n_predictions=3)
    full = _FullTransformer(16, 2, num_layers, 32, 0.1, 3)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 20, 2))
    params = net.init(jax.random.PRNGKey(1), x, train=False)["params"]
    full_params = full.init(jax.random.PRNGKey(1), x, train=False)["params"]
    # Same parameters (names and shapes), so models saved before still load.
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, full_params)
    np.testing.assert_allclose(
        net.apply({"params": params}, x, train=False), full.apply({"params": params}, x, train=False), atol=2e-5
    )


def test_to_patches_hand_checked_with_the_first_step_repeated_in_front() -> None:
    x = jnp.arange(2 * 5 * 2, dtype=jnp.float32).reshape(2, 5, 2)  # steps (0,1), (2,3), ..., (8,9)
    tokens = to_patches(x, 2)
    assert tokens.shape == (2, 3, 4)
    np.testing.assert_array_equal(tokens[0], [[0, 1, 0, 1], [2, 3, 4, 5], [6, 7, 8, 9]])
    np.testing.assert_array_equal(to_patches(x, 1), x)


def test_patched_transformer_is_the_one_step_transformer_on_patch_tokens() -> None:
    """A token of ``p`` steps is one input vector of ``p * F`` features, nothing more."""
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 30, 3))
    dims = {"d_model": 16, "num_heads": 2, "num_layers": 2, "ff_dim": 32, "dropout": 0.1, "n_predictions": 3}
    patched = TransformerForecaster(**dims, patch_len=4)
    one_step = TransformerForecaster(**dims, patch_len=1)
    params = patched.init(jax.random.PRNGKey(1), x, train=False)["params"]
    assert params["embed"]["kernel"].shape == (4 * 3, 16)
    np.testing.assert_allclose(
        patched.apply({"params": params}, x, train=False),
        one_step.apply({"params": params}, to_patches(x, 4), train=False),
        atol=1e-6,
    )


def test_members_follow_settings(small_spec: Callable[[str], ModelSpec]) -> None:
    spec = small_spec("transformer")
    assert isinstance(build_network(replace(spec, transformer=TransformerSettings(members=1))), TransformerForecaster)
    ensemble = build_network(replace(spec, transformer=TransformerSettings(members=4)))
    assert isinstance(ensemble, SeedEnsemble) and ensemble.members == 4


def test_seed_ensemble_averages_its_members() -> None:
    single = TransformerForecaster(d_model=16, num_heads=2, num_layers=1, ff_dim=32, dropout=0.1, n_predictions=3)
    net = SeedEnsemble(single, 3)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 20, 2))
    params = net.init(jax.random.PRNGKey(1), x, train=False)["params"]
    # One network's params with a leading [members] axis, each member initialised apart.
    one = single.init(jax.random.PRNGKey(1), x, train=False)["params"]
    assert jax.tree.map(jnp.shape, params["network"]) == jax.tree.map(lambda a: (3, *a.shape), one)
    kernels = params["network"]["embed"]["kernel"]
    assert not np.allclose(kernels[0], kernels[1])
    member_forecasts = [
        single.apply({"params": jax.tree.map(lambda a, i=i: a[i], params["network"])}, x, train=False) for i in range(3)
    ]
    np.testing.assert_allclose(net.apply({"params": params}, x, train=False), np.mean(member_forecasts, 0), atol=1e-6)
    trained = net.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert trained.shape == (4, 3)


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
