"""JAX's persistent compilation cache, shared by the training processes of one pdm-ray home.

Every Ray trial actor and benchmark task is a process of its own, and XLA compiles each network
shape anew in each process. On one core of the 2-core box that took about 6 s for a 2-layer
LSTM's steps, against 0.7 s for an epoch of a sample channel's training. With the cache on
disk the first process to meet a shape compiles it and the others load it (the same training
then took 2.6 s in place of 8.7 s, to the same loss).

JAX keys each entry by the computation, the XLA flags, the backend and its own version, so an
entry is only reused where it is valid. A size bound turns on JAX's file lock around reads and
writes, which makes processes writing the same folder at once safe.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax

logger = logging.getLogger(__name__)

MAX_BYTES = 1 << 30  # least recently used entries go beyond this (a sweep's shapes take about 1 MB)


def use_compile_cache(folder: Path | None) -> None:
    """Read and write compiled XLA programs under ``folder`` from now on in this process.

    ``None`` (``compile_cache: false``) leaves the cache off. A folder that cannot be
    created leaves it off too, with a warning: the cache only saves time, so it must never
    fail a training. Call it before the process compiles anything: JAX decides once per
    process whether the cache is on.
    """
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.warning("compile cache off: cannot create %s (%s)", folder, exc)
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # default 1 s skips the forecast steps
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
