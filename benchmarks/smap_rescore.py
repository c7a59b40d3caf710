"""Score a benchmark run's stored forecasts again, without retraining.

Reads ``RUN/predictions/<chan_id>.npz`` and ``RUN/results.csv`` (for the validation losses that
weight the ensemble) of a ``pdm-ray benchmark`` or ``benchmarks/smap_full.py`` run, thresholds
and scores every channel with the given config (``pdm_ray.benchmark.detect_channel``), writes
``OUT/results.csv`` and ``OUT/summary.json``, and says how many channels' detections differ
from the run's. With the run's own config it is a reproducibility check: nothing may differ.
Given an ``lstm`` run and a ``transformer`` run (``--run`` twice), it scores their ensemble:
the same forecasts ``--model ensemble`` would have made, since both runs train with one config
and one seed. With ``--pool``, several runs of one model that differ only in their seed have
their forecasts averaged: each run's forecast is the mean of its ``members``, so the average
of k runs is the forecast of one run with k times the members (a larger deep ensemble).

    python benchmarks/smap_rescore.py --data ../shared/data/nasa_smap --run out/smap_cpu_lstm --out out/rescored
    python benchmarks/smap_rescore.py --data ../shared/data/nasa_smap --run out/smap_cpu_lstm \
        --run out/smap_cpu_transformer --out out/ensemble
    python benchmarks/smap_rescore.py --data ../shared/data/nasa_smap --pool --run out/transformer_seed3 \
        --run out/transformer_seed4 --out out/pooled

A threshold config compared this way on test labels is a test-set result: it says what a change
does, and must not be used to choose the change.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pdm_ray.benchmark.channel import detect_channel
from pdm_ray.benchmark.results import write_results
from pdm_ray.config import load_settings
from pdm_ray.data.channels import load_channel, load_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument(
        "--run",
        required=True,
        action="append",
        help="output directory of a benchmark run; twice (an lstm and a transformer run) for their ensemble",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument(
        "--pool", action="store_true", help="average the forecasts of runs of one model that differ only in seed"
    )
    args = parser.parse_args()

    settings = load_settings(args.config)
    runs = [Path(r) for r in args.run]
    metas = [json.loads((r / "summary.json").read_text())["meta"] for r in runs]
    models = [m["model"] for m in metas]
    if args.pool:
        problem = _pool_problem(metas)
        if problem:
            parser.exit(2, f"smap_rescore.py: {problem}\n")
        model = models[0]
    elif len(runs) > 1 and sorted(models) != ["lstm", "transformer"]:
        parser.error(f"two runs make an ensemble: an lstm and a transformer run, not {' and '.join(models)}")
    else:
        model = models[0] if len(runs) == 1 else "ensemble"
    rows = pd.concat([pd.read_csv(r / "results.csv") for r in runs], ignore_index=True)
    chan_ids = set.intersection(*({p.stem for p in (r / "predictions").glob("*.npz")} for r in runs))
    labels = load_labels(args.data)
    start = time.perf_counter()
    results, differ = [], []
    for chan_id in sorted(chan_ids):
        mine = rows[(rows["chan_id"] == chan_id) & (rows["model"] != "ensemble")]
        saved = []
        for r in runs:
            with np.load(r / "predictions" / f"{chan_id}.npz") as npz:
                saved.append({k: npz[k] for k in npz.files})
        if args.pool:
            pooled = np.mean([s[model] for s in saved], axis=0, dtype=np.float64).astype(np.float32)
            predictions = {model: pooled}
            # The pooled mean's validation loss was never computed; the runs' times add up.
            val_losses, train_seconds = {model: float("nan")}, {model: float(mine["train_seconds"].sum())}
        else:
            predictions = {k: v for s in saved for k, v in s.items()}
            val_losses = dict(zip(mine["model"], mine["val_loss"], strict=True))
            train_seconds = dict(zip(mine["model"], mine["train_seconds"], strict=True))
        rescored = detect_channel(
            load_channel(args.data, chan_id, labels), settings, model, predictions, val_losses, train_seconds
        )
        results.extend(rescored)
        if args.pool:
            continue
        channel_rows = rows[rows["chan_id"] == chan_id]
        before = dict(zip(channel_rows["model"], channel_rows["anomaly_sequences"].map(json.loads), strict=True))
        if any(r.model in before and before[r.model] != [list(s) for s in r.sequences] for r in rescored):
            differ.append(chan_id)
    meta = {
        "runs": [str(r) for r in runs],
        "pooled": args.pool,
        "data": args.data,
        "model": model,
        "channels": len({r.chan_id for r in results}),
        "channels_differing_from_run": differ,
        "seconds": round(time.perf_counter() - start, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": json.loads(settings.threshold.model_dump_json()),
    }
    out = write_results(results, args.out, meta)
    for name, s in json.loads((out / "summary.json").read_text())["models"].items():
        print(name, json.dumps(s["total"]))
    if args.pool:
        return
    print(f"{len(differ)} of {meta['channels']} channels differ from {', '.join(args.run)}: {', '.join(differ) or '-'}")


def _pool_problem(metas: list[dict]) -> str | None:
    """Why these runs cannot be pooled into one larger ensemble, or None if they can."""
    if len(metas) < 2:
        return "--pool needs at least two --run"
    if len({m["model"] for m in metas}) != 1 or metas[0]["model"] == "ensemble":
        return f"--pool averages runs of one model (lstm or transformer), not {', '.join(m['model'] for m in metas)}"

    def without_seed(meta: dict) -> dict:
        settings = {k: v for k, v in meta["settings"].items() if k not in ("home", "train")}
        train = {k: v for k, v in meta["settings"]["train"].items() if k != "seed"}
        return {**settings, "train": train}

    if any(without_seed(m) != without_seed(metas[0]) for m in metas[1:]):
        return "--pool runs must share every setting but the seed (and PDM_HOME)"
    seeds = [m["settings"]["train"]["seed"] for m in metas]
    if len(set(seeds)) != len(seeds):
        return f"--pool runs must have different seeds, got {seeds}"
    return None


if __name__ == "__main__":
    main()
