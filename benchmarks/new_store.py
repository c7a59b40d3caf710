"""A new SQLite tracking store: MLflow's own schema set-up vs a copy of the cached empty store.

``connect`` on a path where no store exists, alternating the two ways in one process
(MLflow already imported, the template already built; its one-off build is timed apart):
MLflow's set-up is forced by pointing ``XDG_CACHE_HOME`` at a file, which makes the cache
unusable. Prints medians and minima over ``--repeats`` (default 7) of each.

Usage: .venv/bin/python benchmarks/new_store.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from pdm_ray.tracking.runs import connect, new_sqlite_store


def _connect_new(root: Path, cache: Path) -> float:
    os.environ["XDG_CACHE_HOME"] = str(cache)
    db = Path(tempfile.mkdtemp(dir=root)) / "mlflow.db"
    started = time.perf_counter()
    connect(f"sqlite:///{db}", "pdm-ray")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache, unusable = root / "cache", root / "not-a-directory"
        unusable.write_text("")
        _connect_new(root, unusable)  # imports and first-use costs, on neither side
        os.environ["XDG_CACHE_HOME"] = str(cache)
        started = time.perf_counter()
        new_sqlite_store(root / "first.db")  # builds the template
        build = time.perf_counter() - started
        times: dict[str, list[float]] = {"mlflow's schema set-up": [], "copy of the empty store": []}
        for _ in range(args.repeats):
            times["mlflow's schema set-up"].append(_connect_new(root, unusable))
            times["copy of the empty store"].append(_connect_new(root, cache))
    print(f"load average {os.getloadavg()[0]:.1f}; template built once in {build:.2f} s")
    for name, ts in times.items():
        print(f"{name:>25}: median {statistics.median(ts):.3f} s, min {min(ts):.3f} s (n={len(ts)})")
    ratio = statistics.median(times["mlflow's schema set-up"]) / statistics.median(times["copy of the empty store"])
    print(f"{'speedup':>25}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
