"""One channel from raw arrays to training windows: quality gate, impute, normalize, windows.

``prepare_channel`` is the single path every trainer uses (the CLI, DVC stages, Tune
trainables, retraining), so training and serving see the same preprocessing:

1. quality of train and test (test range bounds learned from train);
2. the gate: a critical train report (or test, with ``quality.gate: train_and_test``)
   raises ``DataQualityError`` carrying the report. Only train is gated by default:
   test data is where anomalies live, and they look like bad quality;
3. imputation (non-finite values are missing); a gap longer than ``impute.max_gap``
   that stays unfilled raises ``DataError``;
4. normalization fitted on train only, applied to both;
5. training windows (``make_windows``), and per-window features when enabled.

``save_prepared``/``load_prepared`` store the result as ``.npy`` + JSON (no pickle).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from pdm_ray.config import Settings
from pdm_ray.data.channels import Channel
from pdm_ray.data.features import compute_features
from pdm_ray.data.impute import ImputeResult, impute
from pdm_ray.data.normalize import Normalizer, fit_normalizer
from pdm_ray.data.quality import QualityReport, QualityStatus, assess_quality, learn_bounds
from pdm_ray.data.windows import make_windows
from pdm_ray.errors import DataError, DataQualityError, InsufficientDataError
from pdm_ray.ids import validate_sensor_id

logger = logging.getLogger(__name__)

ARRAYS = ("train", "test", "train_imputed", "test_imputed")
FEATURE_FILES = {"train_features": "train_features.csv", "test_features": "test_features.csv"}


@dataclass(frozen=True)
class PreparedData:
    """Everything a trainer needs from one channel.

    Attributes:
        channel_id: the channel.
        train: normalized, imputed float32 ``[T_train, F]``.
        test: normalized, imputed float32 ``[T_test, F]``.
        X: training input windows float32 ``[N, l_s, F]``.
        y: training targets float32 ``[N, n_predictions]`` (channel 0).
        normalizer: fitted on train; ``normalizer.inverse_transform(test)`` is the raw test.
        train_quality, test_quality: quality reports of the raw series.
        train_imputed, test_imputed: bool masks ``[T, F]`` of filled values.
        anomalies: labelled inclusive ``(start, end)`` test intervals (may be empty).
        train_features, test_features: per-window features when ``features.enabled``.
    """

    channel_id: str
    train: npt.NDArray[np.float32] = field(repr=False)
    test: npt.NDArray[np.float32] = field(repr=False)
    X: npt.NDArray[np.float32] = field(repr=False)
    y: npt.NDArray[np.float32] = field(repr=False)
    normalizer: Normalizer
    train_quality: QualityReport
    test_quality: QualityReport
    train_imputed: npt.NDArray[np.bool_] = field(repr=False)
    test_imputed: npt.NDArray[np.bool_] = field(repr=False)
    anomalies: tuple[tuple[int, int], ...] = ()
    train_features: pd.DataFrame | None = field(default=None, repr=False)
    test_features: pd.DataFrame | None = field(default=None, repr=False)


def _gate(channel_id: str, split: str, report: QualityReport) -> None:
    if report.status is QualityStatus.CRITICAL:
        reasons = "; ".join(r for r in report.reasons if "is critical" in r)
        raise DataQualityError(
            f"channel {channel_id}: {split} data quality is critical, refusing to train: {reasons}", report
        )


def _impute(channel_id: str, split: str, series: npt.NDArray[np.float32], settings: Settings) -> ImputeResult:
    series = np.where(np.isinf(series), np.nan, series)
    result = impute(series, settings.impute)
    if not result.complete:
        gaps = ", ".join(f"[{g.start}, {g.stop}) in column {g.column}" for g in result.unfilled[:5])
        more = f" and {len(result.unfilled) - 5} more" if len(result.unfilled) > 5 else ""
        raise DataError(
            f"channel {channel_id}: {split} has {len(result.unfilled)} gap(s) longer than "
            f"impute.max_gap={settings.impute.max_gap} left unfilled: {gaps}{more}"
        )
    n = int(result.imputed.sum())
    if n:
        logger.info("channel %s: %s: imputed %d value(s) with %s", channel_id, split, n, result.method)
    return result


def impute_channel(channel: Channel, settings: Settings) -> Channel:
    """``channel`` with train and test gaps filled as ``prepare_channel`` fills them, in original units.

    For scoring trained models on the series they saw (the promotion gate): a raw series
    with a gap cannot be windowed, though training ran on it.

    Raises:
        DataError: all values missing, or a gap too long to fill.
    """
    cid = validate_sensor_id(channel.id)
    train = _impute(cid, "train", np.asarray(channel.train), settings).values
    return replace(channel, train=train, test=_impute(cid, "test", np.asarray(channel.test), settings).values)


def prepare_channel(channel: Channel, settings: Settings) -> PreparedData:
    """Quality gate, impute, normalize (fit on train) and window one channel.

    Args:
        channel: raw train/test arrays ``[T, F]``; may hold NaN/inf to be imputed.
        settings: the ``quality``, ``impute``, ``normalize``, ``windows`` and ``features`` sections.

    Raises:
        DataQualityError: a gated report is critical (the error carries it in ``.report``).
        DataError: all values missing, a gap too long to fill, train/test feature mismatch.
        InsufficientDataError: train shorter than ``l_s + n_predictions`` or test not longer
            than ``l_s``, or shorter than the feature window when features are enabled.
    """
    cid = validate_sensor_id(channel.id)
    train_raw, test_raw = np.asarray(channel.train), np.asarray(channel.test)
    if train_raw.ndim != 2 or test_raw.ndim != 2 or train_raw.shape[1] != test_raw.shape[1]:
        raise DataError(f"channel {cid}: train {train_raw.shape} and test {test_raw.shape} must be [T, F] with equal F")
    qs = settings.quality
    train_quality = assess_quality(train_raw, qs)
    test_quality = assess_quality(test_raw, qs, bounds=learn_bounds(train_raw, qs.range_margin))
    logger.info("channel %s: quality train %s, test %s", cid, train_quality.status.label, test_quality.status.label)
    if qs.gate != "off":
        _gate(cid, "train", train_quality)
    if qs.gate == "train_and_test":
        _gate(cid, "test", test_quality)

    train_imp = _impute(cid, "train", train_raw, settings)
    test_imp = _impute(cid, "test", test_raw, settings)
    normalizer = fit_normalizer(train_imp.values, settings.normalize)
    train = normalizer.transform(train_imp.values)
    test = normalizer.transform(test_imp.values)

    l_s, n_pred = settings.windows.l_s, settings.windows.n_predictions
    if len(test) <= l_s:
        raise InsufficientDataError(
            f"channel {cid}: test of length {len(test)} has no index to predict after l_s={l_s}"
        )
    try:
        X, y = make_windows(train, l_s, n_pred)
    except InsufficientDataError as exc:
        raise InsufficientDataError(f"channel {cid}: train: {exc}") from exc
    features = {}
    if settings.features.enabled:
        features = {
            "train_features": compute_features(train, settings.features),
            "test_features": compute_features(test, settings.features),
        }
    return PreparedData(
        channel_id=cid,
        train=train,
        test=test,
        X=X,
        y=y,
        normalizer=normalizer,
        train_quality=train_quality,
        test_quality=test_quality,
        train_imputed=train_imp.imputed,
        test_imputed=test_imp.imputed,
        anomalies=tuple(channel.anomalies),
        **features,
    )


def save_prepared(prepared: PreparedData, out_dir: str | Path) -> Path:
    """Write ``prepared`` to ``out_dir/<channel_id>/`` and return that directory.

    Files: ``train.npy``, ``test.npy``, ``train_imputed.npy``, ``test_imputed.npy``,
    ``normalizer.json``, ``quality.json`` (train and test reports), ``meta.json`` (window
    shape and labels) and, when present, ``train_features.csv``/``test_features.csv``.
    """
    root = Path(out_dir) / prepared.channel_id
    root.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        np.save(root / f"{name}.npy", getattr(prepared, name), allow_pickle=False)
    meta = {
        "channel_id": prepared.channel_id,
        "l_s": int(prepared.X.shape[1]),
        "n_predictions": int(prepared.y.shape[1]),
        "anomalies": [list(a) for a in prepared.anomalies],
    }
    quality = {"train": prepared.train_quality.to_dict(), "test": prepared.test_quality.to_dict()}
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (root / "normalizer.json").write_text(json.dumps(prepared.normalizer.to_dict(), indent=2) + "\n")
    (root / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    for name, filename in FEATURE_FILES.items():
        frame = getattr(prepared, name)
        if frame is not None:
            frame.to_csv(root / filename)
    return root


def load_prepared(directory: str | Path) -> PreparedData:
    """Read a directory written by ``save_prepared``; the windows are rebuilt from ``train``.

    Raises:
        DataError: a file is missing or malformed.
    """
    root = Path(directory)
    try:
        meta = json.loads((root / "meta.json").read_text())
        quality = json.loads((root / "quality.json").read_text())
        normalizer = Normalizer.from_dict(json.loads((root / "normalizer.json").read_text()))
        arrays = {name: np.load(root / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
        l_s, n_predictions = int(meta["l_s"]), int(meta["n_predictions"])
        channel_id = meta["channel_id"]
        anomalies = tuple((int(a), int(b)) for a, b in meta["anomalies"])
        train_quality = QualityReport.from_dict(quality["train"])
        test_quality = QualityReport.from_dict(quality["test"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{root}: not a prepared channel directory: {type(exc).__name__}: {exc}") from exc
    X, y = make_windows(arrays["train"], l_s, n_predictions)
    features = {
        name: pd.read_csv(root / filename, index_col="t").astype(np.float32)
        for name, filename in FEATURE_FILES.items()
        if (root / filename).exists()
    }
    return PreparedData(
        channel_id=validate_sensor_id(channel_id),
        X=X,
        y=y,
        normalizer=normalizer,
        train_quality=train_quality,
        test_quality=test_quality,
        anomalies=anomalies,
        **arrays,
        **features,
    )
