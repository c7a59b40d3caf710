"""Run the Telemanom benchmark over a whole Telemanom-layout directory without Ray.

The same per-channel core as ``pdm-ray benchmark`` (``pdm_ray.benchmark.run_channel``), fanned
out over a local process pool instead of Ray tasks. It exists for machines that have the
model stack but no Ray, such as a lent GPU box; on a Ray machine use ``pdm-ray benchmark``.

    python benchmarks/smap_full.py --data ../shared/data/nasa_smap --model ensemble --out out/smap --workers 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime


def _one(data_dir: str, chan_id: str, model: str, settings_json: str) -> tuple[list, dict]:
    from pdm_ray.benchmark.channel import run_channel
    from pdm_ray.config import Settings
    from pdm_ray.data.channels import load_channel

    settings = Settings.model_validate_json(settings_json)
    run = run_channel(load_channel(data_dir, chan_id), settings, model)
    return list(run.results), run.predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="ensemble", choices=["lstm", "transformer", "ensemble"])
    parser.add_argument("--out", default="out/smap")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--channels", default=None)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()

    from pdm_ray.benchmark.results import write_predictions
    from pdm_ray.config import load_settings
    from pdm_ray.data.channels import largest_first, list_channels, train_sizes

    settings = load_settings(args.config)
    channels = args.channels.split(",") if args.channels else list_channels(args.data)
    channels = largest_first(train_sizes(args.data, channels))  # long trainings first
    start = time.perf_counter()
    results = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_one, args.data, c, args.model, settings.model_dump_json()): c for c in channels}
        for n, fut in enumerate(as_completed(futures), 1):
            try:
                rows, predictions = fut.result()
            except Exception as exc:  # one failed channel must not lose the others' results
                print(f"[{n}/{len(channels)}] {futures[fut]} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            results.extend(rows)
            write_predictions(args.out, futures[fut], predictions)
            done = ", ".join(
                f"{r.model} tp={getattr(r.counts, 'tp', '-')} fp={getattr(r.counts, 'fp', '-')}" for r in rows
            )
            print(f"[{n}/{len(channels)}] {futures[fut]} {time.perf_counter() - start:.0f}s {done}", flush=True)
            _write(args, results, channels, start)  # partial results survive an interrupted run
    out = _write(args, results, channels, start)
    summary = json.loads((out / "summary.json").read_text())
    for model, s in summary["models"].items():
        print(model, json.dumps(s["total"]))
    print(f"wall {time.perf_counter() - start:.1f}s -> {out}")


def _write(args: argparse.Namespace, results: list, channels: list[str], start: float):
    from pdm_ray.benchmark.results import write_results

    wall = time.perf_counter() - start
    meta = {
        "data": args.data,
        "model": args.model,
        "channels": len(channels),
        "channels_done": len({r.chan_id for r in results}),
        "workers": args.workers,
        "wall_seconds": round(wall, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus; jax devices: {_devices()}",
    }
    return write_results(results, args.out, meta)


def _devices() -> str:
    import jax

    return ", ".join(str(d) for d in jax.devices())


if __name__ == "__main__":
    main()
