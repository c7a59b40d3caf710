"""``pdm-ray benchmark``: the Telemanom benchmark on any Telemanom-layout directory.

Each channel is one Ray task (``num_cpus=1``), largest first, running the Ray-free
``pdm_ray.benchmark.run_channel``; results go to ``OUT/results.csv`` and ``OUT/summary.json``,
rewritten as each channel finishes so an interrupted run keeps what it finished, and each
channel's forecasts (test, and the train series' held-out tail) to
``OUT/predictions/<chan_id>.npz`` so detection can be re-scored without retraining.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pdm_ray.cli.common import add_config_option, channel_ids, connect_ray, format_table, progress, settings_from
from pdm_ray.config import Settings
from pdm_ray.cores import ONE_CORE_ENV
from pdm_ray.data.channels import largest_first, list_channels, load_channel, load_labels, train_sizes
from pdm_ray.errors import DataError

if TYPE_CHECKING:  # the model stack (JAX) is imported only where it runs: in the tasks
    import numpy as np
    import numpy.typing as npt

    from pdm_ray.benchmark.channel import BenchmarkModel, ChannelResult


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("benchmark", help="train and evaluate every channel of a Telemanom-layout directory")
    parser.add_argument("--data", required=True, metavar="DIR", help="directory in the Telemanom layout")
    parser.add_argument("--model", choices=["lstm", "transformer", "ensemble"], default="lstm")
    parser.add_argument("--channels", default=None, help="comma-separated channel ids (default: all)")
    parser.add_argument("--out", default="out/benchmark", metavar="OUT", help="output directory")
    add_config_option(parser)
    parser.set_defaults(handler=benchmark)


def _channel_task(
    data_dir: str, chan_id: str, settings_json: str, model: BenchmarkModel
) -> tuple[list[ChannelResult], dict[str, npt.NDArray[np.float32]]]:
    from pdm_ray.benchmark.channel import run_channel
    from pdm_ray.cores import claim_core
    from pdm_ray.models.compile_cache import use_compile_cache

    claim_core()  # one core per task (see pdm_ray.cores)
    settings = Settings.model_validate_json(settings_json)
    use_compile_cache(settings.compile_cache_dir)  # home is absolute here (run_benchmark resolves it)
    channel = load_channel(data_dir, chan_id, load_labels(data_dir))
    run = run_channel(channel, settings, model)
    return list(run.results), run.predictions


def run_benchmark(
    data_dir: str, channels: list[str], settings: Settings, model: BenchmarkModel
) -> Iterator[tuple[list[ChannelResult], dict[str, npt.NDArray[np.float32]]]]:
    """Fan the channels out as Ray tasks; yield each channel's results and forecasts as it finishes."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=0)(_channel_task).options(runtime_env={"env_vars": ONE_CORE_ENV})
    settings_json = settings.model_copy(update={"home": settings.home.resolve()}).model_dump_json()
    pending = [task.remote(data_dir, c, settings_json, model) for c in channels]
    with progress(len(pending), f"benchmark {model}") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
            bar.update(1)


def benchmark(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    available = list_channels(args.data)
    if args.channels:
        channels = channel_ids(args.channels)
        missing = sorted(set(channels) - set(available))
        if missing:
            raise DataError(f"{args.data}: no such channel(s): {', '.join(missing)}")
    else:
        channels = available
    if not channels:
        raise DataError(f"{args.data}: no channels found under train/")
    channels = largest_first(train_sizes(args.data, channels))  # long trainings first, none alone at the end
    load_labels(args.data)  # fail fast on a malformed label file, before any task starts
    connect_ray(settings)
    from pdm_ray.benchmark.results import write_predictions, write_results

    start = time.perf_counter()
    results: list[ChannelResult] = []
    out = Path(args.out)
    for channel_results, predictions in run_benchmark(str(Path(args.data).resolve()), channels, settings, args.model):
        results.extend(channel_results)
        write_predictions(out, channel_results[0].chan_id, predictions)
        out = write_results(results, out, _meta(args, settings, channels, results, time.perf_counter() - start))
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())["models"]
    rows = []
    for name, s in summary.items():
        t = s["total"]
        if t is None:
            rows.append([name, s["channels"], s["n_detections"], "-", "-", "-", "-", "-", "-", "-"])
        else:
            rows.append(
                [
                    name,
                    s["channels"],
                    s["n_detections"],
                    t["tp"],
                    t["fp"],
                    t["fn"],
                    t["precision"],
                    t["recall"],
                    t["f05"],
                    t["f1"],
                ]
            )
    print(
        format_table(["model", "channels", "detections", "tp", "fp", "fn", "precision", "recall", "F0.5", "F1"], rows)
    )
    print(f"\nwall time {wall:.1f}s; results in {out / 'results.csv'} and {out / 'summary.json'}")
    return 0


def _meta(
    args: argparse.Namespace, settings: Settings, channels: list[str], results: list[ChannelResult], wall: float
) -> dict[str, object]:
    return {
        "data": str(args.data),
        "model": args.model,
        "channels": len(channels),
        "channels_done": len({r.chan_id for r in results}),
        "wall_seconds": round(wall, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.node()}",
        "settings": settings.public_dump(),
    }
