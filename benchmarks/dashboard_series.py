"""What the dashboard costs a sensor: the forecast trace on ingest and ``SensorStream.series`` on read.

Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/dashboard_series.py`` (``--quick`` for a smoke run).

A ``SensorStream`` with the default settings (buffer of 10,000 readings, Telemanom windows
of 70 x 30) is fed a noisy sine with a few spikes in batches of ``--batch`` readings,
scored with persistence forecasts (each reading predicted by the one before it). Printed
medians over ``--repeats`` runs:

* ingest: ``apply`` + ``apply_predictions`` per batch, and the part of it the trace adds
  (``series.traced_smoothing`` and two ``ForecastTrace.put``), timed on the same batches;
* read: ``series(n)`` for n = 500, 2,000 and 10,000 (the drill-down's default is 2,000),
  including the thresholds recomputed per judging window, and its ``to_dict()`` (the JSON body);
* memory: bytes the trace adds per buffered reading and per snapshot.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from pdm_ray.config import Settings
from pdm_ray.streaming import Batch, SensorStream, StreamSettings
from pdm_ray.streaming.series import traced_smoothing


def batches(n: int, size: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    values = (np.sin(t / 40.0) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    values[rng.choice(n, 8, replace=False)] += 3.0
    return [Batch(i, t[s : s + size] + 1e9, values[s : s + size, None]) for i, s in enumerate(range(0, n, size))]


def feed(stream: SensorStream, data: list[Batch]) -> tuple[float, float]:
    """Seconds spent in ingest steps and, of those, in the trace's own work."""
    total = traced = 0.0
    for batch in data:
        t0 = time.perf_counter()
        request = stream.apply(stream.admit(batch))
        if request is not None:
            preds = stream.check_predictions(request, request.window[stream.settings.l_s - 1 : -1, 0])
            t1 = time.perf_counter()
            if stream._detector is not None:  # the trace's share, measured on the same state
                traced_smoothing(stream._detector, preds - request.targets)
                stream.trace.put(request.first_index, forecast=preds)
                stream.trace.put(request.first_index, smoothed=preds)
            traced += time.perf_counter() - t1
            t2 = time.perf_counter()
            stream.apply_predictions(request, preds)
            total += time.perf_counter() - t2 + (t1 - t0)
        else:
            total += time.perf_counter() - t0
    return total, traced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.readings, args.repeats = 6_000, 2
    settings = StreamSettings.from_settings(Settings())
    data = batches(args.readings, args.batch)
    ingest, share = [], []
    reads: dict[int, list[float]] = {500: [], 2_000: [], 10_000: []}
    dicts: list[float] = []
    stream = SensorStream("B-1", settings)
    for _ in range(args.repeats):
        stream = SensorStream("B-1", settings)
        total, traced = feed(stream, data)
        ingest.append(total / args.readings * 1e6)
        share.append(traced / args.readings * 1e6)
        for n in reads:
            t0 = time.perf_counter()
            series = stream.series(n)
            reads[n].append((time.perf_counter() - t0) * 1e3)
        shown = stream.series(2_000)
        t0 = time.perf_counter()
        shown.to_dict()
        dicts.append((time.perf_counter() - t0) * 1e3)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    print(f"{args.readings} readings in batches of {args.batch}, {args.repeats} repeats")
    print(f"ingest (apply + score), per reading: median {statistics.median(ingest):.2f} us")
    print(f"  of which the trace:                median {statistics.median(share):.2f} us")
    for n, times in reads.items():
        print(f"series({n}): median {statistics.median(times):.2f} ms")
    print(f"series(2000).to_dict(): median {statistics.median(dicts):.2f} ms")
    state = stream.to_state()["trace"]
    per_snapshot = state["forecast"].nbytes + state["smoothed"].nbytes
    trace = stream.trace  # its arrays are preallocated at the buffer's capacity
    assert trace is not None
    held = sum(v.nbytes for v in vars(trace).values() if isinstance(v, np.ndarray))
    print(
        f"memory: {held / trace.capacity:g} bytes per buffered reading (trace arrays {held} bytes / capacity "
        f"{trace.capacity}); snapshot +{per_snapshot} bytes at {len(state['forecast'])} readings"
    )
    assert not np.isnan(series.threshold[-1_000:]).any()  # the newest readings were judged


if __name__ == "__main__":
    main()
