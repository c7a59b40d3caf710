"""Compile time of the parameter init: XLA's default options vs ``INIT_COMPILER_OPTIONS``.

Each measurement runs in a fresh process pinned to one core (no compiled programs in memory,
the persistent compilation cache off), for the paper's LSTM (2 x 80) and the default
Transformer at ``l_s`` 250 with 25 features; the two option sets alternate. Prints medians
and minima over ``--repeats`` (default 3) and whether both gave the same bits.

Usage: .venv/bin/python benchmarks/init_compile.py [--repeats 3]
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
import hashlib, json, os, sys, time
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
import jax, jax.numpy as jnp, numpy as np
from pdm_ray.config import Settings
from pdm_ray.models.networks import member_network
from pdm_ray.models.spec import ModelSpec
from pdm_ray.models.training import INIT_COMPILER_OPTIONS
kind, options = sys.argv[1], sys.argv[2]
settings = Settings.model_validate({"train": {"model": kind}})
spec = ModelSpec.from_settings(settings, 25)
net = member_network(spec)
init = jax.jit(
    lambda r, d: net.init(r, d, train=False)["params"],
    compiler_options=INIT_COMPILER_OPTIONS if options == "pdm-ray" else None,
)
dummy = jnp.zeros((1, spec.l_s, spec.n_features), jnp.float32)
started = time.perf_counter()
params = jax.block_until_ready(init(jax.random.PRNGKey(0), dummy))
seconds = time.perf_counter() - started
digest = hashlib.sha256(b"".join(np.asarray(p).tobytes() for p in jax.tree.leaves(params))).hexdigest()
print(json.dumps({"seconds": seconds, "digest": digest}))
"""


def _measure(kind: str, options: str) -> dict[str, Any]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, options], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for kind in ("lstm", "transformer"):
        runs: dict[str, list[dict[str, Any]]] = {"default": [], "pdm-ray": []}
        for _ in range(args.repeats):
            for options in runs:
                runs[options].append(_measure(kind, options))
        digests = {str(r["digest"]) for rs in runs.values() for r in rs}
        for options, rs in runs.items():
            secs = [float(r["seconds"]) for r in rs]
            median, least = statistics.median(secs), min(secs)
            print(f"{kind:11s} {options:8s} init compile + run: median {median:.2f} s, min {least:.2f} s")
        print(f"{kind:11s} same params with both options: {len(digests) == 1}")


if __name__ == "__main__":
    main()
