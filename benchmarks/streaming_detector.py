"""Batch vs. streaming Telemanom threshold: speed, state size, agreement, event-level sanity.

Errors come from a model-free forecast (the trailing mean of the last 10 test values), so
this measures the detector, not a forecaster. For every channel: the batch ``detect`` time,
the streaming time per point when fed in chunks of 1, 70 and 1000, the final state's size, and
whether the stream reports the batch's sequences up to the documented edge effect. Prints
medians over channels, one figure per line, then event-level counts of the baseline.

Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/streaming_detector.py [--data DIR]``
(default: ``../shared/data/nasa_smap`` when present, else ``data/sample``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from pdm_ray.config import ThresholdSettings
from pdm_ray.data.channels import load_channels
from pdm_ray.detection import detect, init_stream, state_to_arrays, update_stream
from pdm_ray.evaluation import EventCounts, score_events

ROOT = Path(__file__).resolve().parent.parent
CHUNKS = (1, 70, 1000)


def trailing_mean_errors(y: np.ndarray, k: int = 10) -> np.ndarray:
    """Errors ``prediction - y`` of the mean of the previous ``k`` values (``y[0]`` at first)."""
    csum = np.cumsum(np.concatenate([[0.0], y]))
    prediction = np.full_like(y, y[0])
    prediction[k:] = (csum[k:-1] - csum[: -k - 1]) / k
    return prediction - y


def stream(errors: np.ndarray, values: np.ndarray, config: ThresholdSettings, chunk: int):
    """Feed a series in chunks; return the sequences and the final state."""
    state, found = init_stream(config), []
    for at in range(0, errors.size, chunk):
        state, done = update_stream(state, errors[at : at + chunk], values[at : at + chunk])
        found += done
    return found, state


def agreement_length(n: int, config: ThresholdSettings) -> int:
    """Prefix on which batch and stream must agree (see ``pdm_ray.detection.streaming``)."""
    b, h = config.batch_size, config.batch_size * config.window_size
    if n < h:
        return 0
    k, r = divmod(n - h, b)
    if r == 0:
        return n
    return h + (k - 1) * b if k >= 1 else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    full = ROOT.parent / "shared" / "data" / "nasa_smap"
    parser.add_argument("--data", type=Path, default=full if full.exists() else ROOT / "data" / "sample")
    args = parser.parse_args()
    config = ThresholdSettings()
    channels = load_channels(args.data)
    batch_s, per_point_us, state_bytes, agree = [], {c: [] for c in CHUNKS}, [], 0
    counts = EventCounts()
    for channel in channels:
        values = channel.test[:, 0].astype(np.float64)
        errors = trailing_mean_errors(values)
        start = time.perf_counter()
        batch = list(detect(errors, values, config).sequences)
        batch_s.append(time.perf_counter() - start)
        counts = counts + score_events([(s.start, s.end) for s in batch], channel.anomalies)
        limit = agreement_length(values.size, config) - 1
        same = True
        for chunk in CHUNKS:
            start = time.perf_counter()
            found, state = stream(errors, values, config, chunk)
            per_point_us[chunk].append(1e6 * (time.perf_counter() - start) / values.size)
            state_bytes.append(sum(a.nbytes for a in state_to_arrays(state).values()))
            same &= [s for s in found if s.end < limit] == [s for s in batch if s.end < limit]
        agree += same
    n = len(channels)
    print(f"data: {args.data} ({n} channels, median length {statistics.median(c.test.shape[0] for c in channels):.0f})")
    print(f"batch detect per channel: median {1e3 * statistics.median(batch_s):.1f} ms")
    for chunk in CHUNKS:
        print(f"stream, chunks of {chunk}: median {statistics.median(per_point_us[chunk]):.2f} us per point")
    print(f"largest final stream state: {max(state_bytes) / 1024:.1f} KiB")
    print(f"stream == batch up to the edge effect: {agree}/{n} channels")
    print(
        f"trailing-mean baseline, event level: TP {counts.tp} FP {counts.fp} FN {counts.fn} "
        f"precision {counts.precision:.3f} recall {counts.recall:.3f} F0.5 {counts.f05:.3f} F1 {counts.f1:.3f}"
    )


if __name__ == "__main__":
    main()
