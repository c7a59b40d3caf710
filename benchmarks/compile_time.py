"""Compile time of the parameter init and the train step: XLA's defaults vs pdm-ray's options.

pdm-ray compiles the init (``INIT_COMPILER_OPTIONS``) and the LSTM's train step
(``LSTM_STEP_COMPILER_OPTIONS``) at XLA backend optimization level 1; the Transformer's step
keeps the defaults, and its "level-1" lines show why. Each measurement runs
in a fresh process pinned to one core (no compiled programs in memory, the persistent
compilation cache off), for the paper's LSTM (2 x 80) and the default Transformer at
``l_s`` 250 with 25 features; the two option sets alternate. A measurement is the first
call: trace, compile and one run (the step on a batch of 64). The step is also timed warm
(median of 20 calls), and the bits it trains (3 steps) are compared. Prints medians and
minima over ``--repeats`` (default 3) and whether both option sets gave the same bits.

Usage: .venv/bin/python benchmarks/compile_time.py [--what init|step|both] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

_CHILD = """
import hashlib, json, os, statistics, sys, time
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
import jax, jax.numpy as jnp, numpy as np
from pdm_ray.config import Settings
from pdm_ray.models.networks import member_network
from pdm_ray.models.spec import ModelSpec
from pdm_ray.models import training
what, kind, options = sys.argv[1], sys.argv[2], sys.argv[3]
settings = Settings.model_validate({"train": {"model": kind}})
spec = ModelSpec.from_settings(settings, 25)
def digest(tree):
    return hashlib.sha256(b"".join(np.asarray(p).tobytes() for p in jax.tree.leaves(tree))).hexdigest()
if what == "init":
    net = member_network(spec)
    init = jax.jit(
        lambda r, d: net.init(r, d, train=False)["params"],
        compiler_options=training.INIT_COMPILER_OPTIONS if options == "level-1" else None,
    )
    dummy = jnp.zeros((1, spec.l_s, spec.n_features), jnp.float32)
    started = time.perf_counter()
    params = jax.block_until_ready(init(jax.random.PRNGKey(0), dummy))
    print(json.dumps({"seconds": time.perf_counter() - started, "digest": digest(params)}))
    sys.exit()
step = jax.jit(
    training._train_step,
    compiler_options=training.LSTM_STEP_COMPILER_OPTIONS if options == "level-1" else None,
)
state = training.create_train_state(spec, 1e-3, jax.random.PRNGKey(0))
rng = np.random.default_rng(0)
batch = {
    "x": rng.normal(size=(64, spec.l_s, spec.n_features)).astype(np.float32),
    "y": rng.normal(size=(64, spec.n_predictions)).astype(np.float32),
    "w": np.ones(64, np.float32),
}
key = jax.random.PRNGKey(1)
started = time.perf_counter()
state = jax.block_until_ready(step(state, batch, key))[0]
seconds = time.perf_counter() - started
state = jax.block_until_ready(step(step(state, batch, key)[0], batch, key))[0]
trained = digest(state.params)
calls = []
for _ in range(20):
    started = time.perf_counter()
    jax.block_until_ready(step(state, batch, key))
    calls.append(time.perf_counter() - started)
print(json.dumps({"seconds": seconds, "digest": trained, "step_ms": 1000 * statistics.median(calls)}))
"""


def _measure(what: str, kind: str, options: str) -> dict[str, Any]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, what, kind, options], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=["init", "step", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for what in ("init", "step") if args.what == "both" else (args.what,):
        for kind in ("lstm", "transformer"):
            runs: dict[str, list[dict[str, Any]]] = {"default": [], "level-1": []}
            for _ in range(args.repeats):
                for options in runs:
                    runs[options].append(_measure(what, kind, options))
            digests = {str(r["digest"]) for rs in runs.values() for r in rs}
            for options, rs in runs.items():
                secs = [float(r["seconds"]) for r in rs]
                line = f"{what:4s} {kind:11s} {options:8s} compile + run: median {statistics.median(secs):.2f} s, "
                line += f"min {min(secs):.2f} s"
                if what == "step":
                    line += f"; warm step median {statistics.median(float(r['step_ms']) for r in rs):.1f} ms"
                print(line)
            print(f"{what:4s} {kind:11s} same bits with both options: {len(digests) == 1}")


if __name__ == "__main__":
    main()
