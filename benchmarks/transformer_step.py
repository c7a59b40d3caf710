"""Transformer train step: pdm-ray's encoder (last block on the last step only) against the full encoder.

The forecast head reads only the last step, so ``TransformerForecaster`` computes only that
step's query in its last block. The baseline is the textbook encoder, every block over every
step (``FullBlocks`` below, the same parameters). Shapes are the benchmark job's defaults:
batch 64, windows of 250 steps, 25 features, d_model 64, 4 heads, 2 layers, MLP 128, dropout
0.1, 10 outputs, Adam, MSE. Both run in one process, one core and one XLA thread (as one
benchmark task gets), alternating step by step. Prints medians (and minima) in ms and the
largest forecast difference on the same parameters. Run:
``.venv/bin/python benchmarks/transformer_step.py [--steps 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from pdm_ray.cores import ONE_CORE_ENV

os.environ.update(ONE_CORE_ENV)  # before JAX starts

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pdm_ray.models.networks import TransformerForecaster, sinusoidal_encoding

BATCH, L_S, N_FEATURES, N_PRED = 64, 250, 25, 10
SHAPE = {"d_model": 64, "num_heads": 4, "num_layers": 2, "ff_dim": 128, "dropout": 0.1, "n_predictions": N_PRED}


class FullBlocks(TransformerForecaster):
    """The baseline: every block over every step, the head on the last one."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        h = drop(nn.Dense(self.d_model, name="embed")(x) + sinusoidal_encoding(x.shape[1], self.d_model))
        for i in range(self.num_layers):
            a = nn.LayerNorm(name=f"ln_attn_{i}")(h)
            attention = nn.MultiHeadDotProductAttention(
                num_heads=self.num_heads, dropout_rate=self.dropout, deterministic=not train, name=f"attn_{i}"
            )
            h = h + drop(attention(a, a))
            m = nn.gelu(nn.Dense(self.ff_dim, name=f"mlp_in_{i}")(nn.LayerNorm(name=f"ln_mlp_{i}")(h)))
            h = h + drop(nn.Dense(self.d_model, name=f"mlp_out_{i}")(m))
        return nn.Dense(self.n_predictions, name="head")(nn.LayerNorm(name="ln_final")(h)[:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed train steps per side")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, L_S, N_FEATURES)).astype(np.float32)
    y = rng.standard_normal((BATCH, N_PRED)).astype(np.float32)
    nets = {"pdm-ray (last step)": TransformerForecaster(**SHAPE), "full blocks": FullBlocks(**SHAPE)}
    params = nets["pdm-ray (last step)"].init(jax.random.PRNGKey(0), x, train=False)["params"]
    adam = optax.adam(1e-3)

    def make_step(net: nn.Module):
        @jax.jit
        def step(p, opt_state, key):
            def loss(q):
                return jnp.mean((net.apply({"params": q}, x, train=True, rngs={"dropout": key}) - y) ** 2)

            value, grads = jax.value_and_grad(loss)(p)
            updates, opt_state = adam.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, value

        return step

    steps = {name: make_step(net) for name, net in nets.items()}
    outs = [net.apply({"params": params}, x, train=False) for net in nets.values()]
    times: dict[str, list[float]] = {name: [] for name in nets}
    opt_state = adam.init(params)
    for rep in range(args.steps + 2):  # two warm-up steps each (compilation)
        for name, step in steps.items():
            t0 = time.perf_counter()
            jax.block_until_ready(step(params, opt_state, jax.random.PRNGKey(rep)))
            if rep >= 2:
                times[name].append(time.perf_counter() - t0)
    print(f"one core, one XLA thread; load average {os.getloadavg()[0]:.1f}")
    print(f"max |forecast difference| on the same parameters: {float(jnp.max(jnp.abs(outs[0] - outs[1]))):.2e}")
    for name, t in times.items():
        print(f"{name:22s} train step median {statistics.median(t) * 1e3:7.1f} ms, min {min(t) * 1e3:7.1f} ms")
    ratio = statistics.median(times["pdm-ray (last step)"]) / statistics.median(times["full blocks"])
    print(f"pdm-ray / full blocks (medians): x{ratio:.2f}")


if __name__ == "__main__":
    main()
