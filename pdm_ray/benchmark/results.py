"""Benchmark result files: ``results.csv`` (one row per channel and model) and ``summary.json``.

``anomaly_sequences`` in ``results.csv`` is a JSON list of inclusive ``[start, end]`` pairs in
test-series indices, the coordinates of ``labeled_anomalies.csv``. ``predictions/<chan_id>.npz``
holds each forecaster's one-step-ahead test forecasts (test indices ``l_s`` on), as Telemanom
keeps its ``y_hat``: enough to re-run detection without retraining. It also holds
``<kind>_validation``, the forecasts of the train series' held-out tail
(``pdm_ray.benchmark.channel.validation_start``), on which detection settings can be calibrated.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pdm_ray.benchmark.channel import ChannelResult
from pdm_ray.evaluation import EventCounts

RESULT_COLUMNS = [
    "chan_id",
    "spacecraft",
    "model",
    "n_train",
    "n_test",
    "anomaly_sequences",
    "scores",
    "tp",
    "fp",
    "fn",
    "train_seconds",
    "normalized_pred_error",
    "val_loss",
    "point_precision",
    "point_recall",
    "point_f1",
    "roc_auc",
]

# Hundman et al. (KDD 2018), Table 2 (SMAP row), event-level scoring.
PUBLISHED_SMAP = {"precision": 0.855, "recall": 0.855}


def results_frame(results: Iterable[ChannelResult]) -> pd.DataFrame:
    """One row per (channel, model) with the columns of ``RESULT_COLUMNS``."""
    rows = []
    for r in results:
        c = r.counts
        rows.append(
            {
                "chan_id": r.chan_id,
                "spacecraft": r.spacecraft,
                "model": r.model,
                "n_train": r.n_train,
                "n_test": r.n_test,
                "anomaly_sequences": json.dumps([list(s) for s in r.sequences]),
                "scores": json.dumps([round(s, 6) for s in r.scores]),
                "tp": None if c is None else c.tp,
                "fp": None if c is None else c.fp,
                "fn": None if c is None else c.fn,
                "train_seconds": round(r.train_seconds, 3),
                "normalized_pred_error": r.normalized_pred_error,
                "val_loss": r.val_loss,
                "point_precision": r.point_precision,
                "point_recall": r.point_recall,
                "point_f1": r.point_f1,
                "roc_auc": r.roc_auc,
            }
        )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _metrics(counts: EventCounts) -> dict[str, Any]:
    return {
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "precision": counts.precision,
        "recall": counts.recall,
        "f05": counts.f05,
        "f1": counts.f1,
    }


def summarize(results: Sequence[ChannelResult]) -> dict[str, Any]:
    """Totals per model: overall and per spacecraft, from summed event counts.

    Channels without labels only count their detections (``n_detections``).
    """
    summary: dict[str, Any] = {}
    by_model: dict[str, list[ChannelResult]] = defaultdict(list)
    for r in results:
        by_model[r.model].append(r)
    for model, rows in sorted(by_model.items()):
        labelled = [r for r in rows if r.counts is not None]
        per_craft: dict[str, EventCounts] = {}
        for r in labelled:
            if r.counts is not None:
                per_craft[r.spacecraft] = per_craft.get(r.spacecraft, EventCounts(0, 0, 0)) + r.counts
        total = sum((r.counts for r in labelled if r.counts is not None), EventCounts(0, 0, 0))
        aucs = [r.roc_auc for r in labelled if r.roc_auc is not None]
        summary[model] = {
            "channels": len(rows),
            "labelled_channels": len(labelled),
            "n_detections": sum(len(r.sequences) for r in rows),
            "train_seconds": sum(r.train_seconds for r in rows),
            "total": _metrics(total) if labelled else None,
            "per_spacecraft": {k: _metrics(v) for k, v in sorted(per_craft.items())},
            "mean_roc_auc": sum(aucs) / len(aucs) if aucs else None,
        }
    return summary


def write_results(results: Sequence[ChannelResult], out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``results.csv`` and ``summary.json`` into ``out_dir`` and return the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(results, key=lambda r: (r.model, r.chan_id))
    results_frame(ordered).to_csv(out / "results.csv", index=False)
    payload = {"meta": meta, "published_telemanom_smap": PUBLISHED_SMAP, "models": summarize(ordered)}
    (out / "summary.json").write_text(json.dumps(payload, indent=2))
    return out


def write_predictions(out_dir: str | Path, chan_id: str, predictions: dict[str, npt.NDArray[np.float32]]) -> Path:
    """Write one channel's forecasts (``ChannelRun.predictions``) to ``predictions/<chan_id>.npz``."""
    path = Path(out_dir) / "predictions" / f"{chan_id}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **predictions)
    return path
