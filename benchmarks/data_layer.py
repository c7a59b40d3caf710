"""Data-layer timings on one long SMAP channel: medians, each next to its per-step/per-window loop baseline.

Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/data_layer.py [DATA_DIR] [CHANNEL]``
(default: the full SMAP set in /work/shared/data/nasa_smap if present, else data/sample; T-1).
Each line gives the median wall time and the median CPU time of this process (robust to
other jobs on a shared machine).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from pdm_ray.config import FeatureSettings, ImputeSettings, NormalizeSettings, QualitySettings, Settings
from pdm_ray.data import load_channel
from pdm_ray.data.features import compute_features
from pdm_ray.data.impute import estimate_local_level, impute, smooth_local_level
from pdm_ray.data.normalize import fit_normalizer
from pdm_ray.data.pipeline import prepare_channel
from pdm_ray.data.quality import assess_quality
from pdm_ray.data.versioning import content_hash

FULL = Path("/work/shared/data/nasa_smap")
ROOT = Path(__file__).resolve().parents[1]


def medians_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds of ``fn`` after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def report(label: str, fn: Callable[[], object], repeats: int = 7, per: int = 1, unit: str = "ms") -> float:
    wall, cpu = medians_ms(fn, repeats)
    scale = 1e3 if unit == "us" else 1.0
    print(f"{label}: {wall * scale / per:.4g} {unit} (cpu {cpu * scale / per:.4g} {unit})")
    return wall / per


def loop_features(values: np.ndarray, window: int, n: int) -> None:
    """Baseline: a subset of the features, one window at a time with pandas/scipy/numpy calls."""
    for end in range(window - 1, window - 1 + n):
        w = values[end - window + 1 : end + 1]
        for k in (10, 30, window):
            sub = w[-k:]
            sub.mean(), sub.std(), sub.min(), sub.max(), np.quantile(sub, [0.1, 0.5, 0.9])
        pd.Series(w).ewm(span=5).mean().iloc[-1]
        stats.skew(w), stats.kurtosis(w), np.polyfit(np.arange(window), w, 1)
        np.abs(np.fft.rfft(w - w.mean())) ** 2


def kalman_loop(y: np.ndarray, q: float) -> np.ndarray:
    """Baseline: Kalman filter + RTS smoother of the local-level model, one Python step per time step."""
    n = y.size
    a, p = 0.0, 1e9
    fa, fp, pa, pp = (np.zeros(n) for _ in range(4))
    for t in range(n):
        pa[t], pp[t] = a, p
        if np.isfinite(y[t]):
            g = p / (p + 1.0)
            a, p = a + g * (y[t] - a), p * (1.0 - g)
        fa[t], fp[t] = a, p
        p += q
    out = fa.copy()
    for t in range(n - 2, -1, -1):
        out[t] = fa[t] + fp[t] / pp[t + 1] * (out[t + 1] - pa[t + 1])
    return out


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else (FULL if FULL.is_dir() else ROOT / "data" / "sample")
    chan_id = sys.argv[2] if len(sys.argv) > 2 else "T-1"
    channel = load_channel(data_dir, chan_id)
    test = channel.test.astype(np.float64)
    print(f"data: {data_dir}, channel {chan_id}: train {channel.train.shape}, test {channel.test.shape}")

    report("assess_quality(test)", lambda: assess_quality(test, QualitySettings()), repeats=21)
    report(
        "fit_normalizer(train) + transform(test)",
        lambda: fit_normalizer(channel.train, NormalizeSettings()).transform(test),
        repeats=21,
    )

    rng = np.random.default_rng(0)
    holey = test.copy()
    starts = rng.choice(len(test) - 10, size=len(test) // 200, replace=False)
    for start in starts:  # ~0.5% of the steps start a gap of 1..5 values
        holey[start : start + rng.integers(1, 6), 0] = np.nan
    for method in ("linear", "ffill", "seasonal", "kalman"):
        report(
            f"impute {method} ({int(np.isnan(holey[:, 0]).sum())} missing)",
            lambda m=method: impute(holey, ImputeSettings(method=m)),
        )
    q = estimate_local_level(holey[:, 0])
    fast = report("local-level smoother, banded solve", lambda: smooth_local_level(holey[:, 0], q), repeats=21)
    slow = report("local-level smoother, Kalman+RTS loop (baseline)", lambda: kalman_loop(holey[:, 0], q), repeats=3)
    print(f"  speed-up {slow / fast:.0f}x")

    settings = FeatureSettings()
    n_windows = len(test) - settings.window + 1
    fast = report(
        f"compute_features(test): {n_windows} windows x 52", lambda: compute_features(test, settings), repeats=5
    )
    print(f"  per window: {1e3 * fast / n_windows:.3g} us")
    subset = 300
    slow = report(
        "per-window loop (baseline, 29 of the 52 features)",
        lambda: loop_features(test[:, 0], settings.window, subset),
        repeats=3,
        per=subset,
        unit="us",
    )
    print(f"  speed-up per window {slow / (fast / n_windows):.0f}x")

    full = Settings()
    report(
        f"prepare_channel (l_s {full.windows.l_s}, gate, impute, normalize, windows)",
        lambda: prepare_channel(channel, full),
        repeats=5,
    )
    report(f"content_hash({data_dir.name})", lambda: content_hash(data_dir), repeats=3)


if __name__ == "__main__":
    main()
