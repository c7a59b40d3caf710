"""Parallel sweep efficiency: 4 channels x 4 trials, 2 at a time, vs the same 16 trainings in one process.

1. ``run_sweep`` over the 4 sample channels with 4 sampled configs each, FIFO (no early
   stopping, so both sides do the same work), ``max_concurrent_trials`` = ``--concurrent``
   (default 2), 1 CPU per trial, MLflow on SQLite, best model per channel registered.
2. The 16 configs the sweep sampled (read back from the MLflow trial runs) trained one
   after another in this process with the same code path (``prepare_channel`` + ``train``);
   ``--single-thread-baseline`` gives it the trials' one-thread XLA flags. ``--pin-baseline``
   adds a second baseline: the same loop in a child process pinned to one core
   (``pdm_ray.cores.claim_core``), as each trial is, so both sides get one core per training
   (an unpinned "one-thread" JAX process still keeps about 1.4 cores busy).

Prints both wall times, their ratio, the driver's CPU time during the sweep, and the
Tune+MLflow overhead per trial in two forms: slot time not spent inside trial functions
(``(concurrent x sweep wall - sum of trial times) / 16``) and the sweep's wall time beyond a
perfect split of the sequential time (``(sweep wall - sequential / concurrent) / (16 /
concurrent)``). ``--concurrent 1`` isolates the overhead from CPU contention. Medians over
``--repeats`` (default 1: one repeat takes minutes on 2 cores), each taken on its own, so the
speedup is printed twice: the median of the per-repeat ratios, and the ratio of the median
walls (the one that matches the wall rows).

``--space shipped`` samples the shipped LSTM sweep space (``configs/sweeps/lstm.yaml``: learning
rate, 1-2 layers of 40/80/120 units, dropout, batch 32/64/128) in place of the small default one
(16/32 units), so that trainings are as long as a user's; use it with ``--l-s 250``.

Usage: .venv/bin/python benchmarks/sweep_parallel.py [--epochs 4] [--l-s 100] [--concurrent 2]
       [--space small|shipped] [--single-thread-baseline] [--pin-baseline [--pinned-only]] [--repeats 1]
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray
import yaml
from mlflow.tracking import MlflowClient

from pdm_ray.config import DEFAULT_CONFIG, Settings
from pdm_ray.cores import ONE_CORE_ENV, claim_core
from pdm_ray.data import load_channel
from pdm_ray.data.pipeline import prepare_channel
from pdm_ray.models import ModelSpec, train
from pdm_ray.tracking.runs import PARENT_RUN_TAG
from tuning.space import trial_settings
from tuning.sweep import run_sweep

CHANNELS = ["A-2", "A-5", "A-6", "T-1"]
DATA = DEFAULT_CONFIG.parent.parent / "data" / "sample"
SMALL_SPACE = {
    "learning_rate": {"loguniform": [1e-3, 1e-2]},
    "units": {"choice": [16, 32]},
    "layers": {"choice": [1, 2]},
}
SHIPPED_SWEEP = DEFAULT_CONFIG.parent / "sweeps" / "lstm.yaml"
_PARAM_TYPES = {"learning_rate": float, "units": int, "layers": int, "dropout": float, "batch_size": int}
Trials = list[tuple[str, dict[str, object], float]]  # (channel, sampled config, trial seconds)


def _settings(home: Path, epochs: int, l_s: int, concurrent: int) -> Settings:
    return Settings.model_validate(
        {
            "home": str(home),
            "windows": {"l_s": l_s, "n_predictions": 10},
            "train": {"epochs": epochs, "patience": epochs, "batch_size": 64},
            "sweep": {"model": "lstm", "num_samples": 4, "max_concurrent_trials": concurrent, "scheduler": "fifo"},
        }
    )


def _search_space(name: str) -> dict[str, object]:
    if name == "small":
        return SMALL_SPACE
    return yaml.safe_load(SHIPPED_SWEEP.read_text())["sweep"]["search_space"]


def _sweep(settings: Settings, search_space: dict[str, object]) -> tuple[float, float, float, Trials]:
    """Run the sweep; return its wall time, the driver's CPU time, ``Tuner.fit``'s wall time and
    (channel, config, trial seconds) per trial."""
    start, cpu_start, epoch_start = time.perf_counter(), time.process_time(), time.time()
    result = run_sweep(CHANNELS, settings=settings, data_dir=DATA, search_space=search_space)
    wall, driver_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    client = MlflowClient(result.tracking_uri)
    exp = client.get_experiment_by_name(settings.tracking.experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{result.parent_run_id}'")
    trials = []
    for run in runs:
        config = {k: cast(run.data.params[k]) for k, cast in _PARAM_TYPES.items() if k in run.data.params}
        trials.append((run.data.tags["pdm.channel"], config, run.data.metrics["time_total_s"]))
    print("trial timeline (s from the sweep's start: MLflow run start, end; Tune's time_total_s):")
    for run in sorted(runs, key=lambda r: r.info.start_time):
        begin, end = (t / 1000 - epoch_start for t in (run.info.start_time, run.info.end_time))
        print(f"  {run.data.tags['pdm.channel']:4s} {begin:7.1f} {end:7.1f}  {run.data.metrics['time_total_s']:6.1f}")
    return wall, driver_cpu, result.wall_seconds, trials


def _sequential(settings: Settings, trials: Trials) -> tuple[float, list[float]]:
    """The same trainings one after another in this process; wall time and per-training seconds."""
    times = []
    start = time.perf_counter()
    for channel_id, config, _ in trials:
        t0 = time.perf_counter()
        s = trial_settings(settings, "lstm", {"channel": channel_id, **config})
        channel = load_channel(DATA, channel_id)
        prepared = prepare_channel(channel, s)
        train(ModelSpec.from_settings(s, channel.n_features), s.train, prepared.X, prepared.y)
        times.append(time.perf_counter() - t0)
    return time.perf_counter() - start, times


def _pinned_sequential(settings_doc: str, trials: Trials) -> tuple[float, list[float]]:
    """``_sequential`` in this (child) process after pinning it to one core."""
    if claim_core() is None:
        raise RuntimeError("no free core to pin the baseline to")
    return _sequential(Settings.model_validate_json(settings_doc), trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--l-s", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--space", choices=["small", "shipped"], default="small", help="search space to sample")
    parser.add_argument("--pin-baseline", action="store_true", help="add a baseline pinned to one core")
    parser.add_argument(
        "--pinned-only", action="store_true", help="with --pin-baseline: skip the unpinned baseline (saves its time)"
    )
    parser.add_argument("--concurrent", type=int, default=2, help="max_concurrent_trials (1 isolates overhead)")
    parser.add_argument(
        "--single-thread-baseline",
        action="store_true",
        help="run the sequential baseline with the trials' one-thread XLA flags (default: JAX's own threading)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.single_thread_baseline:  # before this process first touches JAX
        os.environ["XLA_FLAGS"] = ONE_CORE_ENV["XLA_FLAGS"]
    logging.basicConfig(level=logging.WARNING)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": ONE_CORE_ENV})
    rows: dict[str, list[float]] = {}
    try:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                settings = _settings(Path(tmp), args.epochs, args.l_s, args.concurrent)
                sweep_wall, driver_cpu, fit_wall, trials = _sweep(settings, _search_space(args.space))
                seq_wall, seq_times = (math.nan, [math.nan]) if args.pinned_only else _sequential(settings, trials)
                if args.pin_baseline:  # a spawned child: XLA's threads start after the pin
                    with multiprocessing.get_context("spawn").Pool(1) as pool:
                        pinned_wall, pinned_times = pool.apply(_pinned_sequential, (settings.model_dump_json(), trials))
            n = len(trials)
            trial_sum = sum(t for _, _, t in trials)
            measured = {
                "sweep_wall_s": sweep_wall,
                "sweep_driver_cpu_s": driver_cpu,
                "sweep_outside_tuner_fit_s": sweep_wall - fit_wall,  # checks, MLflow set-up, registration
                "sequential_wall_s": seq_wall,
                "speedup_median_of_per_repeat_ratios": seq_wall / sweep_wall,
                "sequential_training_median_s": statistics.median(seq_times),
                "trial_time_median_s": statistics.median(t for _, _, t in trials),
                "slot_overhead_per_trial_s": (args.concurrent * sweep_wall - trial_sum) / n,
                "overhead_vs_ideal_split_per_trial_s": (sweep_wall - seq_wall / args.concurrent)
                / (n / args.concurrent),
            }
            if args.pin_baseline:
                measured["pinned_sequential_wall_s"] = pinned_wall
                measured["speedup_vs_pinned_median_of_per_repeat_ratios"] = pinned_wall / sweep_wall
                measured["pinned_sequential_training_median_s"] = statistics.median(pinned_times)
            for key, value in measured.items():
                rows.setdefault(key, []).append(value)
    finally:
        ray.shutdown()
    threads = "one XLA thread" if args.single_thread_baseline else "JAX default threads"
    threads += " (and a second one pinned to one core)" if args.pin_baseline else ""
    print(
        f"sweep_parallel: {len(CHANNELS)} channels x 4 trials, {args.concurrent} concurrent, {args.epochs} epochs, "
        f"l_s={args.l_s}, {args.space} space; baseline with {threads}; "
        f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    medians = {key: statistics.median(values) for key, values in rows.items()}
    for key, values in rows.items():
        print(f"{key:46s} median {medians[key]:8.2f}  (n={len(values)})")
    # The speedups above are medians of each repeat's ratio; these are the ratios of the wall medians printed above.
    for name, baseline in (("speedup", "sequential_wall_s"), ("speedup_vs_pinned", "pinned_sequential_wall_s")):
        if baseline in medians:
            ratio = medians[baseline] / medians["sweep_wall_s"]
            print(f"{name + '_ratio_of_median_walls':46s}        {ratio:8.2f}  ({baseline} / sweep_wall_s)")


if __name__ == "__main__":
    main()
