"""Ingest throughput and memory of the sensor actors, against a no-op actor call carrying the same data.

Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/ingest.py`` (``--quick`` for a smoke run).

Throughput: ``--actors`` sensor actors (default 8) are fed concurrently from this driver,
``--in-flight`` calls outstanding per actor, batches of 1,000 and 10,000 readings of
``--features`` float32 columns (SMAP's 25). Each configuration starts fresh actors, sends
warm-up batches (past the drift reference, so first-use imports are not timed), then times
the rest: aggregate readings per second, and the p50/p99 ack latency (submit to ack, so it
includes queueing behind the calls in flight) with the number of acks per run it comes from
(the scored 10,000-reading runs have 5 calls per actor, 40 acks: their "p99" is near the max).
Three kinds of calls:

* ``noop``: a bare actor method that takes the batch and returns its length (the floor:
  Ray's own cost of moving the array);
* ``wal``: ``SensorActor.ingest`` with default settings: validation, the write-ahead log
  with ``fdatasync`` before the ack, ring buffer, drift window, quality every 10 batches,
  snapshots every 100 batches; no forecaster;
* ``scored``: the same plus scoring with ``PersistenceForecaster`` (the naive forecaster, so
  the streaming Telemanom detector runs on real errors without a trained model).

Every line is the median over ``--repeats`` runs. Memory: proportional set size (PSS, from
``/proc/<pid>/smaps_rollup``) of idle sensor actors against bare actors started in the same
run, and the time to start ``--idle`` sensor actors with the drop in ``MemAvailable``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import ray

from actors.forecaster import PersistenceForecaster
from actors.sensor import SensorActor
from pdm_ray.config import RaySettings, Settings
from pdm_ray.streaming import Batch

NAMESPACE = "pdm-bench"


@ray.remote(num_cpus=0)
class Noop:
    """The floor: an actor call carrying the batch and doing nothing with it."""

    def ingest(self, batch: Batch) -> int:
        return len(batch)

    def pid(self) -> int:
        return os.getpid()


def pss_mib(pid: int) -> tuple[float, float]:
    """(PSS, RSS) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("Pss:", "Rss:"):
            fields[parts[0]] = int(parts[1]) / 1024
    return fields["Pss:"], fields["Rss:"]


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def make_batches(n_batches: int, size: int, features: int, seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        t = np.arange(i * size, (i + 1) * size, dtype=np.float64)
        values = rng.standard_normal((size, features)).astype(np.float32)
        values[:, 0] = np.sin(t / 50.0) + 0.1 * values[:, 0]
        out.append(Batch(i, t, values))
    return out


async def drive(actor: Any, batches: list[Batch], in_flight: int, latencies: list[float]) -> None:
    """Send ``batches`` in order with ``in_flight`` calls outstanding; record each ack's latency."""
    pending: deque[tuple[float, Any]] = deque()
    for batch in batches:
        if len(pending) >= in_flight:
            start, ref = pending.popleft()
            await ref
            latencies.append(time.perf_counter() - start)
        pending.append((time.perf_counter(), actor.ingest.remote(batch)))
    while pending:
        start, ref = pending.popleft()
        await ref
        latencies.append(time.perf_counter() - start)


def start_actors(kind: str, n: int, settings: Settings, tag: str) -> list[Any]:
    if kind == "noop":
        actors = [Noop.remote() for _ in range(n)]
        ray.get([a.pid.remote() for a in actors])
        return actors
    forecaster = PersistenceForecaster() if kind == "scored" else None
    data = settings.model_dump(mode="json")
    actors = [SensorActor.remote(f"{tag}-{i}", data, forecaster) for i in range(n)]
    ray.get([a.process_info.remote() for a in actors])
    return actors


def run_once(
    kind: str, size: int, n_batches: int, args: argparse.Namespace, settings: Settings, tag: str
) -> dict[str, float]:
    """One timed run: fresh actors, warm-up batches, then ``n_batches`` more per actor.

    The warm-up covers the first ``drift_reference_size`` readings and one more batch, so the
    first-use imports of the drift monitor and the detector are not timed.
    """
    actors = start_actors(kind, args.actors, settings, tag)
    warm = -(-settings.actors.drift_reference_size // size) + 1
    per_actor = [make_batches(n_batches + warm, size, args.features, seed=i) for i in range(args.actors)]
    for k in range(warm):
        ray.get([a.ingest.remote(b[k]) for a, b in zip(actors, per_actor, strict=True)])
    latencies: list[float] = []

    async def all_actors() -> None:
        await asyncio.gather(
            *(drive(a, b[warm:], args.in_flight, latencies) for a, b in zip(actors, per_actor, strict=True))
        )

    start = time.perf_counter()
    asyncio.run(all_actors())
    wall = time.perf_counter() - start
    for actor in actors:
        ray.kill(actor)
    calls = args.actors * n_batches
    return {
        "points_per_s": calls * size / wall,
        "calls_per_s": calls / wall,
        "p50_ms": 1e3 * float(np.percentile(latencies, 50)),
        "p99_ms": 1e3 * float(np.percentile(latencies, 99)),
        "acks": len(latencies),
    }


def p99_label(n: int) -> str:
    """The p99's label with its count: from fewer than 100 acks ``np.percentile`` lies between the two largest."""
    return f"p99 (n={n})" if n >= 100 else f"p99 (n={n}: near the max)"


def throughput(args: argparse.Namespace, settings: Settings) -> list[tuple[str, int, dict[str, float]]]:
    plan = [(1_000, 200), (10_000, 30)] if not args.quick else [(1_000, 20), (10_000, 3)]
    rows = []
    for size, n_batches in plan:
        for kind in ("noop", "wal", "scored"):
            n = n_batches if kind != "scored" else max(2, n_batches // 6)
            runs = [run_once(kind, size, n, args, settings, f"{kind}{size}r{r}") for r in range(args.repeats)]
            median = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
            rows.append((kind, size, median))
            print(
                f"{kind:>6} batch {size:>6}: {median['points_per_s']:>12,.0f} readings/s  "
                f"{median['calls_per_s']:>8,.1f} calls/s  "
                f"ack p50 {median['p50_ms']:8.2f} ms  {p99_label(int(median['acks']))} {median['p99_ms']:8.2f} ms",
                flush=True,
            )
    return rows


def memory(args: argparse.Namespace, settings: Settings) -> None:
    """PSS of bare actors vs. sensor actors: fresh, with a full buffer, and scoring; then ``--idle`` at once."""
    data = settings.model_dump(mode="json")
    bare = [Noop.remote() for _ in range(4)]
    idle = [SensorActor.remote(f"idle-{i}", data, None) for i in range(4)]
    pids_bare = ray.get([a.pid.remote() for a in bare])
    pids_idle = [info.pid for info in ray.get([a.process_info.remote() for a in idle])]
    n = settings.actors.buffer_size
    filled = SensorActor.remote("filled-0", data, None)
    scoring = SensorActor.remote("scoring-0", data, PersistenceForecaster())
    for actor in (filled, scoring):  # a full ring buffer, a drift reference, quality, a snapshot
        ray.get([actor.ingest.remote(b) for b in make_batches(n // 1000, 1000, args.features, seed=0)])
        ray.get(actor.checkpoint.remote())
    pid_filled, pid_scoring = (ray.get(a.process_info.remote()).pid for a in (filled, scoring))
    time.sleep(1.0)
    bare_pss = statistics.median(pss_mib(p)[0] for p in pids_bare)
    bare_rss = statistics.median(pss_mib(p)[1] for p in pids_bare)
    print(f"bare actor: PSS {bare_pss:.1f} MiB, RSS {bare_rss:.1f} MiB (median of 4)")
    rows = [
        (
            "idle sensor actor (fresh)",
            statistics.median(pss_mib(p)[0] for p in pids_idle),
            statistics.median(pss_mib(p)[1] for p in pids_idle),
        ),
        (f"sensor actor, full buffer {n} x {args.features}, no model", *pss_mib(pid_filled)),
        (f"sensor actor, full buffer {n} x {args.features}, scoring", *pss_mib(pid_scoring)),
    ]
    for label, pss, rss in rows:
        print(
            f"{label}: PSS {pss:.1f} MiB ({pss / bare_pss:.2f} x bare), RSS {rss:.1f} MiB; "
            f"24 GiB / PSS = {24 * 1024 / pss:.0f} actors"
        )
    for actor in [*bare, *idle, filled, scoring]:
        ray.kill(actor)
    if args.idle <= 0:
        return
    time.sleep(2.0)
    available = mem_available_mib()
    start = time.perf_counter()
    many = [SensorActor.remote(f"many-{i}", data, None) for i in range(args.idle)]
    infos = ray.get([a.process_info.remote() for a in many])
    started = time.perf_counter() - start
    ray.get([a.status.remote() for a in many])
    time.sleep(2.0)
    used = available - mem_available_mib()
    pss = [pss_mib(info.pid)[0] for info in infos]
    print(
        f"started {args.idle} idle sensor actors in {started:.1f} s; MemAvailable dropped {used:.0f} MiB "
        f"({used / args.idle:.1f} MiB each -> {24 * 1024 * args.idle / used:.0f} in 24 GiB); "
        f"median PSS with all alive {statistics.median(pss):.1f} MiB"
    )
    for actor in many:
        ray.kill(actor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=8)
    parser.add_argument("--features", type=int, default=25)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idle", type=int, default=100, help="idle sensor actors to start at once (0: skip)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--quick", action="store_true", help="few batches, one repeat, 10 idle actors")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.idle = 1, min(args.idle, 10)
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    home = Path(tempfile.mkdtemp(prefix="pdm-ingest-"))
    settings = Settings(home=home, ray=RaySettings(namespace=NAMESPACE))
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{args.actors} actors x {args.in_flight} calls in flight, {args.features} features, home {home}",
        flush=True,
    )
    if not args.skip_throughput:
        throughput(args, settings)
    memory(args, settings)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
