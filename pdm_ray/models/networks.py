"""Flax Linen forecasters: windows ``[B, l_s, F]`` -> next ``n_predictions`` values of channel 0 ``[B, P]``.

``LSTMForecaster`` is the network of Hundman et al. (2018, arXiv:1802.04431): stacked LSTM
layers (2 x 80 units), dropout 0.3 after each, and a dense head on the last hidden state.
``TransformerForecaster`` is an encoder-only alternative (Vaswani et al. 2017, pre-LN blocks
as in Xiong et al. 2020) over patches of time steps (Nie et al. 2023, PatchTST) with the same
inputs and outputs. ``SeedEnsemble`` averages several copies of either.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pdm_ray.models.lstm import LSTMLayer
from pdm_ray.models.spec import ModelSpec


class LSTMForecaster(nn.Module):
    """Stacked LSTM -> dropout -> dense head (Hundman et al. 2018).

    Attributes:
        layers: hidden units of each stacked layer, e.g. ``(80, 80)``.
        dropout: dropout rate after every LSTM layer.
        n_predictions: ``P``, outputs of the dense head.
    """

    layers: tuple[int, ...]
    dropout: float
    n_predictions: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Forecast from windows ``x`` ``[B, l_s, F]``; returns ``[B, n_predictions]``."""
        h = jnp.swapaxes(x, 0, 1)  # time-major [l_s, B, F] for the scans
        for i, units in enumerate(self.layers):
            h = LSTMLayer(units, name=f"lstm_{i}")(h)
            if i == len(self.layers) - 1:
                h = h[-1]  # the last hidden state [B, H] feeds the head
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(self.n_predictions, name="head")(h)


def sinusoidal_encoding(length: int, d_model: int) -> np.ndarray:
    """The fixed positional encoding of Vaswani et al. (2017), float32 ``[length, d_model]``."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    rates = np.exp(-np.log(10000.0) * (np.arange(0, d_model, 2, dtype=np.float64) / d_model))
    enc = np.zeros((length, d_model), dtype=np.float64)
    enc[:, 0::2] = np.sin(pos * rates)
    enc[:, 1::2] = np.cos(pos * rates[: d_model // 2])
    return enc.astype(np.float32)


def to_patches(x: jax.Array, patch_len: int) -> jax.Array:
    """Windows ``[B, l_s, F]`` -> ``[B, ceil(l_s / patch_len), patch_len * F]`` tokens of consecutive steps.

    When ``patch_len`` does not divide ``l_s``, the first step is repeated in front, so that no
    step is dropped and the last token ends at the window's last step.
    """
    b, l_s, f = x.shape
    pad = -l_s % patch_len
    if pad:
        x = jnp.concatenate([jnp.repeat(x[:, :1], pad, axis=1), x], axis=1)
    return x.reshape(b, (l_s + pad) // patch_len, patch_len * f)


class TransformerForecaster(nn.Module):
    """Encoder-only Transformer: patch projection + sinusoidal positions -> pre-LN blocks -> last token -> dense.

    Each token embeds ``patch_len`` consecutive steps, as in PatchTST (Nie et al. 2023): a
    250-step window becomes 25 tokens instead of 250, which cuts the ``[tokens, tokens]``
    attention and the per-token MLPs that dominate a CPU train step (BENCHMARKS.md,
    "Transformer train step"), and each token carries local shape that one step lacks.
    The last token reads the whole window through attention and ends right before the
    forecast horizon, so it is the pooled summary (as the LSTM's last hidden state is).

    Attributes:
        d_model: model width.
        num_heads: attention heads (divide ``d_model``).
        num_layers: encoder blocks.
        ff_dim: hidden width of each block's MLP.
        dropout: dropout rate on the embeddings and on each residual branch, where Vaswani et
            al. (2017, section 5.4) put it. Not on the attention weights: a mask over every
            ``[B, heads, l_s, l_s]`` weight cost about 10% of a CPU train step.
        n_predictions: ``P``, outputs of the dense head.
        patch_len: time steps per token; 1 gives one token per step.
    """

    d_model: int
    num_heads: int
    num_layers: int
    ff_dim: int
    dropout: float
    n_predictions: int
    patch_len: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Forecast from windows ``x`` ``[B, l_s, F]``; returns ``[B, n_predictions]``."""
        deterministic = not train
        tokens = to_patches(x, self.patch_len)
        h = nn.Dense(self.d_model, name="embed")(tokens) + sinusoidal_encoding(tokens.shape[1], self.d_model)
        h = nn.Dropout(self.dropout, deterministic=deterministic)(h)
        for i in range(self.num_layers):
            # The head reads only the last token, so the last block computes only that token's
            # query (against every key): the same forecasts, and on one CPU core a paper-sized
            # train step takes 0.6x the time (benchmarks/transformer_step.py).
            last = i == self.num_layers - 1
            a = nn.LayerNorm(name=f"ln_attn_{i}")(h)
            a = nn.MultiHeadDotProductAttention(
                num_heads=self.num_heads, deterministic=deterministic, name=f"attn_{i}"
            )(a[:, -1:] if last else a, a)
            h = (h[:, -1:] if last else h) + nn.Dropout(self.dropout, deterministic=deterministic)(a)
            m = nn.LayerNorm(name=f"ln_mlp_{i}")(h)
            m = nn.gelu(nn.Dense(self.ff_dim, name=f"mlp_in_{i}")(m))
            m = nn.Dense(self.d_model, name=f"mlp_out_{i}")(m)
            h = h + nn.Dropout(self.dropout, deterministic=deterministic)(m)
        h = nn.LayerNorm(name="ln_final")(h)
        return nn.Dense(self.n_predictions, name="head")(h[:, -1])


class _Member(nn.Module):
    """One member of a ``SeedEnsemble``: ``network`` with ``train`` fixed, so ``nn.vmap`` maps only ``x``."""

    network: nn.Module
    train: bool

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.network(x, train=self.train)


class SeedEnsemble(nn.Module):
    """The mean forecast ``[B, P]`` of ``members`` copies of ``network``.

    Params are the network's with a leading ``[members]`` axis (one ``nn.vmap``), so the
    members forecast in one jitted pass and save as one msgpack file. The members are
    trained apart, each as a plain ``network`` (``pdm_ray.models.training``), and stacked.
    """

    network: nn.Module
    members: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Forecast from windows ``x`` ``[B, l_s, F]``."""
        stacked = nn.vmap(
            _Member,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.members,
        )
        return jnp.mean(stacked(self.network, train)(x), axis=0)


def build_network(spec: ModelSpec) -> nn.Module:
    """The Linen module ``spec`` describes (hashable, so jitted functions can take it as static).

    An ``LSTMForecaster`` or ``TransformerForecaster``, inside a ``SeedEnsemble`` when the
    settings ask for more than one member.
    """
    net = member_network(spec)
    members = spec.lstm.members if spec.kind == "lstm" else spec.transformer.members
    return SeedEnsemble(net, members) if members > 1 else net


def member_network(spec: ModelSpec) -> LSTMForecaster | TransformerForecaster:
    """One network of ``spec``: the whole model, or one member of its ``SeedEnsemble``."""
    if spec.kind == "lstm":
        return LSTMForecaster(
            layers=tuple(spec.lstm.layers), dropout=spec.lstm.dropout, n_predictions=spec.n_predictions
        )
    t = spec.transformer
    return TransformerForecaster(
        d_model=t.d_model,
        num_heads=t.num_heads,
        num_layers=t.num_layers,
        ff_dim=t.ff_dim,
        dropout=t.dropout,
        n_predictions=spec.n_predictions,
        patch_len=t.patch_len,
    )
