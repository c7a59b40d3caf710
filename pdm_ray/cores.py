"""One core per training process, so parallel trials on one machine do not slow each other down.

Ray gives each trial or benchmark task one CPU, but only as bookkeeping: XLA's CPU runtime
still spreads a "single-threaded" computation over every core the process may use (the
``XLA_FLAGS`` below shrink its thread pool but do not stop it). Measured on a 2-core box: one
JAX process alone used 1.4 cores, and two side by side each ran 1.57x slower than alone,
while the same two processes pinned to one core each both ran at full speed.

``claim_core`` pins the calling process to a core that no other process on the machine has
claimed, using one lock file per core: the lock is held until the process exits, so a crashed
trial frees its core. When every core is taken (more processes than cores) it pins nothing.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

# Asks glibc (2.35 and later; others ignore it) for transparent huge pages on its large blocks.
# XLA's CPU runtime mallocs each step's temporaries afresh (107 MB for the paper's LSTM step), and
# glibc maps them anew each time, so every step faulted in 27,500 small pages; with huge pages
# the LSTM step ran about 30 % faster on one core (BENCHMARKS.md, "LSTM train step vs PyTorch").
_HUGE_PAGES = "glibc.malloc.hugetlb=1"

# For the process environment of one-CPU trials and tasks (set before JAX starts; glibc reads
# its tunables when the process starts, so they cannot be set from inside it).
ONE_CORE_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
    "GLIBC_TUNABLES": ":".join(filter(None, (os.environ.get("GLIBC_TUNABLES"), _HUGE_PAGES))),
}

_held: IO[str] | None = None  # the lock file of this process's core, kept open while it lives


def claim_core(lock_dir: Path | None = None) -> int | None:
    """Pin every thread of this process to one unclaimed core; return it (None: none was free).

    Calling it again in the same process returns the core it already holds.
    """
    global _held
    if _held is not None:
        return int(Path(_held.name).stem)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    folder = lock_dir or Path(tempfile.gettempdir()) / "pdm_ray_cores"
    folder.mkdir(parents=True, exist_ok=True)
    for core in cores:
        handle = (folder / f"{core}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _pin_all_threads(core)
        _held = handle
        return core
    return None


def _pin_all_threads(core: int) -> None:
    """``sched_setaffinity`` on each thread: the call affects one thread, and XLA's pool may already exist."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {core})
        except (ProcessLookupError, PermissionError):  # a thread that just ended
            continue
