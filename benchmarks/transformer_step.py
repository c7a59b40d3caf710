"""Transformer train step: pdm-ray's encoder against its earlier forms and the textbook encoder.

Five networks, with the benchmark job's shapes (batch 64, windows of 250 steps, 25 features,
d_model 64, 2 layers, MLP 128, dropout 0.1, 10 outputs, Adam, MSE):

- one ``TransformerForecaster`` with the config's defaults (tokens of 10 steps, 2 heads,
  no dropout on the attention weights, the last block computing only the last token's query):
  pdm-ray's default trains 3 of these apart, one after another, so an epoch costs 3 of its steps;
- a ``SeedEnsemble`` of 3 of them in one vmapped step (how the members trained before
  2026-11-27 noon);
- the same with one token per step (pdm-ray on 2026-11-27, before patches);
- one token per step, 4 heads and dropout on the attention weights (before that);
- the textbook encoder, every block over every step, 4 heads, attention dropout (before
  2026-11-26).

All run in one process, one core and one XLA thread (as one benchmark task gets). Each round
runs every network for ``--steps`` consecutive steps, as training does (alternating single
steps with the 700 ms networks slowed the 13 ms ones 2-4x, their data evicted from the caches
in between). Prints medians (and minima) over all rounds in ms, and the largest forecast
difference between the last-step and the full encoder on the same parameters. Run:
``.venv/bin/python benchmarks/transformer_step.py [--steps 10] [--rounds 3]``.
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

from pdm_ray.config import TransformerSettings
from pdm_ray.models.networks import SeedEnsemble, TransformerForecaster, sinusoidal_encoding

BATCH, L_S, N_FEATURES, N_PRED = 64, 250, 25, 10
MEMBERS = TransformerSettings().members
DEFAULTS = {**TransformerSettings().model_dump(exclude={"members"}), "n_predictions": N_PRED}
ONE_STEP_TOKENS = {**DEFAULTS, "patch_len": 1}
FOUR_HEADS = {**ONE_STEP_TOKENS, "num_heads": 4}


class EarlierBlocks(TransformerForecaster):
    """pdm-ray's earlier encoders: one token per step, dropout on the attention weights; every
    block over every step unless ``last_step_only`` (then the last block attends from the last
    step only)."""

    last_step_only: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        h = drop(nn.Dense(self.d_model, name="embed")(x) + sinusoidal_encoding(x.shape[1], self.d_model))
        for i in range(self.num_layers):
            last = self.last_step_only and i == self.num_layers - 1
            a = nn.LayerNorm(name=f"ln_attn_{i}")(h)
            attention = nn.MultiHeadDotProductAttention(
                num_heads=self.num_heads, dropout_rate=self.dropout, deterministic=not train, name=f"attn_{i}"
            )
            h = (h[:, -1:] if last else h) + drop(attention(a[:, -1:] if last else a, a))
            m = nn.gelu(nn.Dense(self.ff_dim, name=f"mlp_in_{i}")(nn.LayerNorm(name=f"ln_mlp_{i}")(h)))
            h = h + drop(nn.Dense(self.d_model, name=f"mlp_out_{i}")(m))
        return nn.Dense(self.n_predictions, name="head")(nn.LayerNorm(name="ln_final")(h)[:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed consecutive train steps per network and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, L_S, N_FEATURES)).astype(np.float32)
    y = rng.standard_normal((BATCH, N_PRED)).astype(np.float32)
    nets = {
        "one member": TransformerForecaster(**DEFAULTS),
        f"{MEMBERS} members, vmapped": SeedEnsemble(TransformerForecaster(**DEFAULTS), MEMBERS),
        "one token per step": TransformerForecaster(**ONE_STEP_TOKENS),
        "4 heads, attn dropout": EarlierBlocks(**FOUR_HEADS, last_step_only=True),
        "full blocks": EarlierBlocks(**FOUR_HEADS),
    }
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
    params = {name: net.init(jax.random.PRNGKey(0), x, train=False)["params"] for name, net in nets.items()}
    same = params["4 heads, attn dropout"]
    outs = [nets[name].apply({"params": same}, x, train=False) for name in ("4 heads, attn dropout", "full blocks")]
    times: dict[str, list[float]] = {name: [] for name in nets}
    opt_states = {name: adam.init(p) for name, p in params.items()}
    for name, step in steps.items():  # compile
        jax.block_until_ready(step(params[name], opt_states[name], jax.random.PRNGKey(0)))
    for _ in range(args.rounds):
        for name, step in steps.items():
            jax.block_until_ready(step(params[name], opt_states[name], jax.random.PRNGKey(0)))  # warm the caches
            for rep in range(args.steps):
                t0 = time.perf_counter()
                jax.block_until_ready(step(params[name], opt_states[name], jax.random.PRNGKey(rep)))
                times[name].append(time.perf_counter() - t0)
    print(f"one core, one XLA thread; load average {os.getloadavg()[0]:.1f}")
    diff = float(jnp.max(jnp.abs(outs[0] - outs[1])))
    print(f"max |forecast difference|, last step only vs full blocks, same parameters: {diff:.2e}")
    ours = statistics.median(times["one member"])
    for name, t in times.items():
        print(
            f"{name:22s} train step median {statistics.median(t) * 1e3:7.1f} ms, min {min(t) * 1e3:7.1f} ms, "
            f"one member / this x{ours / statistics.median(t):.2f}"
        )


if __name__ == "__main__":
    main()
