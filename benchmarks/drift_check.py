"""Drift check timings: medians of many repetitions, printed one per line.

Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/drift_check.py``. The target is one check of
2 x 10,000 samples across all six tests in under 5 ms. Each line gives the median wall time and
the median CPU time of this thread (the latter is robust to other processes on a shared machine).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from scipy import stats

from pdm_ray.config import DriftSettings
from pdm_ray.drift import DriftMonitor, Reference, check_drift, detect_drift

N = 10_000
REPEATS = 300


def medians_ms(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float]:
    """Median wall and thread-CPU time of ``fn`` in milliseconds, after a few warm-up calls."""
    for _ in range(5):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def report(label: str, fn: Callable[[], object], repeats: int = REPEATS, per: int = 1, unit: str = "ms") -> None:
    """Print ``label: wall (cpu)``, divided by ``per`` and scaled to ``unit`` (ms or us)."""
    scale = 1e3 if unit == "us" else 1.0
    wall, cpu = medians_ms(fn, repeats)
    print(f"{label}: {scale * wall / per:.3f} {unit} wall, {scale * cpu / per:.3f} {unit} cpu (median of {repeats})")


def main() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=N).astype(np.float32)
    current = rng.normal(0.05, 1.0, size=N).astype(np.float32)
    cfg = DriftSettings()
    prepared = Reference.from_values(reference, cfg.n_bins, cfg.min_samples)
    report(f"detect_drift, 2 x {N:,} samples, 6 tests", lambda: detect_drift(reference, current, cfg))
    report(f"check_drift, {N:,} vs a prepared reference of {N:,}, 6 tests", lambda: check_drift(prepared, current, cfg))

    def scipy_baseline() -> None:
        stats.ks_2samp(reference, current, method="asymp")
        stats.mannwhitneyu(reference, current, method="asymptotic")
        stats.wasserstein_distance(reference, current)

    report("scipy ks_2samp + mannwhitneyu + wasserstein_distance (3 tests, for comparison)", scipy_baseline, 50)

    monitor = DriftMonitor(DriftSettings(current_size=N), reference)
    monitor.update(current)
    report(f"DriftMonitor.check, window {N:,} vs reference {N:,}", monitor.check)
    batch = rng.normal(size=100).astype(np.float32)
    report("DriftMonitor.update, batches of 100, per point", lambda: monitor.update(batch), 3000, 100, "us")
    report("DriftMonitor.update, one point", lambda: monitor.update(batch[:1]), 3000, 1, "us")


if __name__ == "__main__":
    main()
