"""Drift check timings: medians of many repetitions, printed one per line.

Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/drift_check.py``. The target is one check of
2 x 10,000 samples across all six tests in under 5 ms.
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


def median_ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median wall time of ``fn`` in milliseconds, after a few warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=N).astype(np.float32)
    current = rng.normal(0.05, 1.0, size=N).astype(np.float32)
    cfg = DriftSettings()
    prepared = Reference.from_values(reference, cfg.n_bins, cfg.min_samples)
    one_shot = median_ms(lambda: detect_drift(reference, current, cfg))
    print(f"detect_drift, 2 x {N:,} samples, 6 tests (reference prepared each time): {one_shot:.3f} ms")
    prepared_ms = median_ms(lambda: check_drift(prepared, current, cfg))
    print(f"check_drift, {N:,} current vs prepared {N:,} reference, 6 tests: {prepared_ms:.3f} ms")

    def scipy_baseline() -> None:
        ks = stats.ks_2samp(reference, current, method="asymp")
        mw = stats.mannwhitneyu(reference, current, method="asymptotic")
        w = stats.wasserstein_distance(reference, current) / reference.std()
        del ks, mw, w

    print(
        f"scipy baseline, ks_2samp + mannwhitneyu + wasserstein_distance only: {median_ms(scipy_baseline, 50):.3f} ms"
    )

    monitor_cfg = DriftSettings(current_size=N)
    monitor = DriftMonitor(monitor_cfg, reference)
    monitor.update(current)
    print(f"DriftMonitor.check, window {N:,} vs reference {N:,}: {median_ms(monitor.check):.3f} ms")
    batch = rng.normal(size=100).astype(np.float32)
    per_point_us = 1e3 * median_ms(lambda: monitor.update(batch), repeats=3000) / batch.size
    print(f"DriftMonitor.update, batches of {batch.size}, full window of {N:,}: {per_point_us:.3f} us/point")
    single = batch[:1]
    print(f"DriftMonitor.update, one point: {1e3 * median_ms(lambda: monitor.update(single), repeats=3000):.2f} us")


if __name__ == "__main__":
    main()
