"""An LSTM layer whose backward pass does only the sequential work inside the scan.

Autodiff through a scanned LSTM cell accumulates the recurrent weight gradient step by step,
so each of the ``T`` backward steps runs two small matmuls and carries the gradient pytree.
Here the backward scan computes only the gate gradients ``dG_t`` (and ``dh_{t-1} = dG_t W_h^T``);
the weight gradients are then one large matmul each over all ``T * B`` rows
(``dW_h = H_{t-1}^T dG``, ``dW_x = X^T dG``), as cuDNN-style RNN kernels do. The forward
pass is the standard LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
2000), gate order input, forget, cell, output as in Keras, which Hundman et al. (2018) used.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Residuals = tuple[jax.Array, jax.Array, tuple[jax.Array, ...], jax.Array, jax.Array]


def _scan(x: jax.Array, w_x: jax.Array, w_h: jax.Array, b: jax.Array, save: bool) -> Any:
    """Run the cell over time-major ``x`` ``[T, B, F]``.

    Returns ``hs`` ``[T, B, H]``, plus when ``save`` the per-step residuals, five ``[T, B, H]``
    arrays: ``c_{t-1}, i, f, u, o``.
    """
    hidden = w_h.shape[0]
    zeros = jnp.zeros((x.shape[1], hidden), x.dtype)

    def step(carry: tuple[jax.Array, jax.Array], x_t: jax.Array) -> tuple[tuple[jax.Array, jax.Array], Any]:
        h, c = carry
        g = x_t @ w_x + h @ w_h + b
        i = jax.nn.sigmoid(g[:, :hidden])
        f = jax.nn.sigmoid(g[:, hidden : 2 * hidden])
        u = jnp.tanh(g[:, 2 * hidden : 3 * hidden])
        o = jax.nn.sigmoid(g[:, 3 * hidden :])
        c_new = f * c + i * u
        tanh_c = jnp.tanh(c_new)
        h_new = o * tanh_c
        # Five stacked arrays rather than one concatenated [B, 6H] with tanh(c_t) in it: the
        # backward recomputes tanh(c_t), which costs less than storing and reloading it
        # (one core: 203 -> 181 ms per paper-sized train step, benchmarks/lstm_step.py).
        out = (h_new, (c, i, f, u, o)) if save else h_new
        return (h_new, c_new), out

    return jax.lax.scan(step, (zeros, zeros), x)[1]


@jax.custom_vjp
def lstm_scan(x: jax.Array, w_x: jax.Array, w_h: jax.Array, b: jax.Array) -> jax.Array:
    """LSTM over time-major inputs from zero state.

    Args:
        x: ``[T, B, F]``.
        w_x: input kernel ``[F, 4H]`` (gates i, f, u, o).
        w_h: recurrent kernel ``[H, 4H]``.
        b: bias ``[4H]``.

    Returns:
        hidden states ``[T, B, H]``.
    """
    return _scan(x, w_x, w_h, b, save=False)


def _lstm_fwd(x: jax.Array, w_x: jax.Array, w_h: jax.Array, b: jax.Array) -> tuple[jax.Array, Residuals]:
    hs, res = _scan(x, w_x, w_h, b, save=True)
    return hs, (x, hs, res, w_x, w_h)


def _lstm_bwd(saved: Residuals, d_hs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    x, hs, res, w_x, w_h = saved
    hidden = w_h.shape[0]
    w_h_t = w_h.T
    zeros = jnp.zeros_like(hs[0])

    def step(carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]) -> Any:
        dh_next, dc_next = carry
        dh_t, r = inputs
        c_prev, i, f, u, o = r
        tanh_c = jnp.tanh(f * c_prev + i * u)  # c_t, as the forward computed it
        dh = dh_t + dh_next
        dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)
        dg = jnp.concatenate(
            [
                dc * u * i * (1.0 - i),
                dc * c_prev * f * (1.0 - f),
                dc * i * (1.0 - u * u),
                dh * tanh_c * o * (1.0 - o),
            ],
            axis=-1,
        )
        return (dg @ w_h_t, dc * f), dg

    _, dgs = jax.lax.scan(step, (zeros, zeros), (d_hs, res), reverse=True)
    steps, batch, n_in = x.shape
    dg = dgs.reshape(steps * batch, 4 * hidden)
    h_prev = jnp.concatenate([zeros[None], hs[:-1]], axis=0).reshape(steps * batch, hidden)
    d_x = (dg @ w_x.T).reshape(steps, batch, n_in)
    return d_x, x.reshape(steps * batch, n_in).T @ dg, h_prev.T @ dg, dg.sum(axis=0)


lstm_scan.defvjp(_lstm_fwd, _lstm_bwd)


def _keras_bias(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Zeros with the forget-gate block at 1 (Keras ``unit_forget_bias``, Jozefowicz et al. 2015)."""
    del key
    hidden = shape[0] // 4
    return jnp.zeros(shape, dtype).at[hidden : 2 * hidden].set(1.0)


class LSTMLayer(nn.Module):
    """One LSTM layer over time-major sequences: ``[T, B, F]`` -> hidden states ``[T, B, H]``.

    Initialised as Keras does (Glorot-uniform input kernel, orthogonal recurrent kernel,
    forget bias 1).

    Attributes:
        features: ``H``, the hidden units.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gates = 4 * self.features
        w_x = self.param("w_x", nn.initializers.glorot_uniform(), (x.shape[-1], gates))
        w_h = self.param("w_h", nn.initializers.orthogonal(), (self.features, gates))
        b = self.param("b", _keras_bias, (gates,))
        return lstm_scan(x, w_x, w_h, b)
