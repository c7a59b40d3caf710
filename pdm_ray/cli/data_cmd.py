"""``pdm-ray data ...``: inspect, prepare and version data; the DVC stage entry points.

``prepare`` runs ``prepare_channel`` on each channel and prints its quality table;
``stage train`` / ``stage evaluate`` are the later stages of ``dvc.yaml``: they train a
forecaster per prepared channel and score its detections against the labels.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pdm_ray.cli.common import add_config_option, channel_ids, format_table, settings_from
from pdm_ray.config import Settings
from pdm_ray.data import list_channels, load_channel, load_channels, load_labels
from pdm_ray.errors import DataError, DataQualityError
from pdm_ray.ids import validate_sensor_id

# Every pdm-ray command imports this module: pandas, scipy and the model stack (JAX) are
# imported only in the handlers that use them, so unrelated commands start fast.
if TYPE_CHECKING:
    from pdm_ray.data.pipeline import PreparedData
    from pdm_ray.data.quality import QualityReport
    from pdm_ray.evaluation import EventCounts

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="inspect data in the Telemanom layout")
    data_sub = parser.add_subparsers(dest="data_command", required=True, parser_class=type(parser))
    inspect = data_sub.add_parser("inspect", help="table of channels: lengths, features, labels")
    inspect.add_argument("dir", help="directory with train/, test/ and labeled_anomalies.csv")
    inspect.set_defaults(handler=inspect_data)

    features = data_sub.add_parser("features", help="per-window features of one channel (summary or CSV)")
    features.add_argument("dir", help="directory in the Telemanom layout")
    features.add_argument("--channel", required=True, help="channel id")
    features.add_argument("--split", choices=["train", "test"], default="train", help="which series (default train)")
    features.add_argument(
        "--window", type=int, default=None, metavar="W", help="window length (default features.window)"
    )
    features.add_argument("--out", default=None, metavar="FILE.csv", help="write every window's features as CSV")
    add_config_option(features)
    features.set_defaults(handler=features_data)

    prepare = data_sub.add_parser("prepare", help="quality gate, impute, normalize and window channels")
    prepare.add_argument("dir", help="directory in the Telemanom layout")
    prepare.add_argument("--channels", default=None, help="comma-separated ids (default: data.channels, else all)")
    prepare.add_argument("--out", default=None, metavar="DIR", help="write each prepared channel to DIR/<id>/")
    prepare.add_argument("--strict", action="store_true", help="exit 1 when any channel is refused")
    add_config_option(prepare)
    prepare.set_defaults(handler=prepare_data)

    version = data_sub.add_parser("version", help="DVC md5 of a path, or its content hash when DVC does not track it")
    version.add_argument("path", help="a data file or directory")
    version.set_defaults(handler=version_data)

    stage = data_sub.add_parser("stage", help="the train and evaluate stages of dvc.yaml")
    stage_sub = stage.add_subparsers(dest="stage", required=True, parser_class=type(parser))
    train = stage_sub.add_parser("train", help="train a forecaster for every prepared channel")
    train.add_argument("prepared", help="output directory of 'pdm-ray data prepare'")
    train.add_argument("--out", required=True, metavar="DIR", help="write each model to DIR/<id>/")
    add_config_option(train)
    train.set_defaults(handler=train_stage)
    evaluate = stage_sub.add_parser("evaluate", help="detect anomalies in each test series and score them")
    evaluate.add_argument("prepared", help="output directory of 'pdm-ray data prepare'")
    evaluate.add_argument("models", help="output directory of 'pdm-ray data stage train'")
    evaluate.add_argument("--out", required=True, metavar="FILE.json", help="metrics file")
    add_config_option(evaluate)
    evaluate.set_defaults(handler=evaluate_stage)


def inspect_data(args: argparse.Namespace) -> int:
    channels = load_channels(args.dir, allow_missing=True)
    rows = []
    for ch in channels:
        classes = ", ".join(f"{k}:{v}" for k, v in sorted(Counter(ch.classes).items())) or "-"
        rows.append(
            [
                ch.id,
                ch.spacecraft or "-",
                len(ch.train),
                len(ch.test),
                ch.n_features,
                len(ch.anomalies),
                classes,
            ]
        )
    print(format_table(["channel", "spacecraft", "train", "test", "features", "labels", "classes"], rows))
    n_labels = sum(len(ch.anomalies) for ch in channels)
    print(f"\n{len(channels)} channels, {n_labels} labelled anomaly sequences")
    return 0


def features_data(args: argparse.Namespace) -> int:
    from pdm_ray.data.features import compute_features

    settings = settings_from(args)
    channel = load_channel(args.dir, args.channel)
    frame = compute_features(getattr(channel, args.split), settings.features, window=args.window)
    window = args.window or settings.features.window
    summary = f"{channel.id} {args.split}: {len(frame)} windows x {frame.shape[1]} features (window {window})"
    if args.out:
        try:
            frame.to_csv(args.out)
        except OSError as exc:
            raise DataError(f"--out {args.out}: cannot write the features: {exc}") from exc
        print(f"{summary} -> {args.out}")
        return 0
    print(summary)
    print(frame.head().T.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


CHECK_COLUMNS = ("missing", "outliers", "flatline", "noise", "range", "sampling")


def _quality_row(channel_id: str, split: str, report: QualityReport, imputed: object) -> list[object]:
    return [channel_id, split, report.status.label, *(report[c].value for c in CHECK_COLUMNS), imputed]


def _make_out_dir(path: Path) -> None:
    """Create an output directory, or say in one line why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--out {path}: cannot create the output directory: {exc}") from exc


def prepare_data(args: argparse.Namespace) -> int:
    from pdm_ray.data.pipeline import prepare_channel, save_prepared

    settings = settings_from(args)
    ids = channel_ids(args.channels) if args.channels else settings.data.channels or list_channels(args.dir)
    labels = load_labels(args.dir)
    if args.out:  # before any channel is prepared, so a bad --out fails at once
        _make_out_dir(Path(args.out))
    rows: list[list[object]] = []
    summary: dict[str, dict[str, object]] = {}
    for chan_id in ids:
        try:
            prepared = prepare_channel(load_channel(args.dir, chan_id, labels, allow_missing=True), settings)
        except DataQualityError as exc:
            rows.append(_quality_row(chan_id, "train", exc.report, "-"))
            summary[chan_id] = {"refused": str(exc), "train": exc.report.to_dict()}
            continue
        except DataError as exc:
            summary[chan_id] = {"refused": str(exc)}
            continue
        rows.append(_quality_row(chan_id, "train", prepared.train_quality, int(prepared.train_imputed.sum())))
        rows.append(_quality_row(chan_id, "test", prepared.test_quality, int(prepared.test_imputed.sum())))
        summary[chan_id] = {"train": prepared.train_quality.to_dict(), "test": prepared.test_quality.to_dict()}
        if args.out:
            save_prepared(prepared, args.out)
    headers = ["channel", "split", "status", "missing%", "outliers%", "flatline%", "noise", "range%", "sampling%"]
    print(format_table([*headers, "imputed"], rows))
    refused = {cid: entry["refused"] for cid, entry in summary.items() if "refused" in entry}
    for message in refused.values():
        print(f"refused: {message}")
    print(f"\n{len(ids) - len(refused)} of {len(ids)} channels prepared" + (f" -> {args.out}" if args.out else ""))
    if args.out:
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if args.strict and refused else 0


def version_data(args: argparse.Namespace) -> int:
    from pdm_ray.data.versioning import data_version

    version = data_version(args.path)
    print(f"{version.source}: {version.digest}")
    tracked = f", tracked by {version.tracked_by}" if version.tracked_by else ""
    print(f"{version.path}: {version.n_files} files, {version.size} bytes{tracked}")
    return 0


def _prepared_dirs(root: str) -> list[Path]:
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base}: prepared-data directory not found")
    return sorted(p for p in base.iterdir() if (p / "meta.json").is_file())


def train_stage(args: argparse.Namespace) -> int:
    from pdm_ray.data.pipeline import load_prepared
    from pdm_ray.models import ModelSpec, save_model, train

    settings = settings_from(args)
    _make_out_dir(Path(args.out))  # before any training, so a bad --out fails at once
    rows = []
    for directory in _prepared_dirs(args.prepared):
        prepared = load_prepared(directory)
        shape = (prepared.X.shape[1], prepared.y.shape[1])
        if shape != (settings.windows.l_s, settings.windows.n_predictions):
            raise DataError(
                f"{directory}: prepared with l_s, n_predictions = {shape} but the config says "
                f"{(settings.windows.l_s, settings.windows.n_predictions)}: rerun 'pdm-ray data prepare' with it"
            )
        spec = ModelSpec.from_settings(settings, prepared.X.shape[2])
        model = train(spec, settings.train, prepared.X, prepared.y)
        model = replace(model, normalizer=prepared.normalizer.to_dict())
        save_model(model, Path(args.out) / prepared.channel_id)
        logger.info("channel %s: trained %s, val_loss %.5f", prepared.channel_id, spec.kind, model.val_loss)
        rows.append([prepared.channel_id, spec.kind, len(model.history), model.val_loss, model.naive_val_loss])
    print(format_table(["channel", "model", "epochs", "val_mse", "persistence_mse"], rows))
    return 0


def _evaluate_channel(
    prepared: PreparedData, model_dir: Path, settings: Settings
) -> tuple[EventCounts, dict[str, object]]:
    """Detect anomalies in one prepared test series with its model; counts and a metrics record."""
    from pdm_ray.detection import detect
    from pdm_ray.evaluation import score_events
    from pdm_ray.models import load_model, predict_series

    model = load_model(model_dir)
    l_s = model.spec.l_s
    norm = prepared.normalizer
    # Detect in the data's own units, as Telemanom does: the threshold's error-scale guards are absolute.
    predictions = norm.inverse_value(predict_series(model, prepared.test))
    values = norm.inverse_value(prepared.test[l_s:, 0])
    found = detect(predictions - values, values, settings.threshold)
    sequences = [(s.start + l_s, s.end + l_s) for s in found.sequences]
    counts = score_events(sequences, list(prepared.anomalies))
    return counts, {
        "val_mse": model.val_loss,
        "persistence_mse": model.naive_val_loss,
        "sequences": [list(s) for s in sequences],
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
    }


def evaluate_stage(args: argparse.Namespace) -> int:
    from pdm_ray.data.pipeline import load_prepared

    settings = settings_from(args)
    out = Path(args.out)
    _make_out_dir(out.parent)  # before any scoring, so a bad --out fails at once
    channels: dict[str, dict[str, object]] = {}
    tp = fp = fn = 0
    for directory in _prepared_dirs(args.prepared):
        chan_id = validate_sensor_id(directory.name)
        model_dir = Path(args.models) / chan_id
        if not model_dir.is_dir():
            raise DataError(f"{model_dir}: no model for prepared channel {chan_id}")
        counts, channels[chan_id] = _evaluate_channel(load_prepared(directory), model_dir, settings)
        tp, fp, fn = tp + counts.tp, fp + counts.fp, fn + counts.fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1, "channels": channels}
    try:
        out.write_text(json.dumps(metrics, indent=2) + "\n")
    except OSError as exc:
        raise DataError(f"--out {out}: cannot write the metrics: {exc}") from exc
    rows = [[cid, c["tp"], c["fp"], c["fn"], c["val_mse"]] for cid, c in channels.items()]
    print(format_table(["channel", "tp", "fp", "fn", "val_mse"], rows))
    print(f"\nprecision {precision:.3f}, recall {recall:.3f}, f1 {f1:.3f} -> {out}")
    return 0
