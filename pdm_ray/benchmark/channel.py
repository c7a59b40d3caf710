"""Train, predict, threshold and score one channel: the unit of work of ``pdm-ray benchmark``.

Follows Telemanom (Hundman et al., KDD 2018): train on the channel's train series only (the
last ``validation_split`` of its windows is the held-out validation set used for early stopping),
predict one step ahead for every test index from ``l_s`` on, take the prediction errors, and run
the nonparametric dynamic threshold. Sequences are reported in test-series indices, the
coordinates of ``labeled_anomalies.csv``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from pdm_ray.config import Settings
from pdm_ray.data.channels import Channel
from pdm_ray.data.windows import make_windows
from pdm_ray.detection import DetectionResult, detect
from pdm_ray.detection.ensemble import combine_errors
from pdm_ray.errors import DataError
from pdm_ray.evaluation import EventCounts, intervals_to_mask, point_metrics, roc_auc, score_events
from pdm_ray.models import ModelSpec, TrainedModel, predict_series, train

log = logging.getLogger(__name__)

BenchmarkModel = Literal["lstm", "transformer", "ensemble"]
Forecaster = Literal["lstm", "transformer"]


@dataclass(frozen=True)
class ChannelResult:
    """One channel's detections and, when it has labels, their scores.

    ``sequences`` are inclusive ``(start, end)`` test-series indices. ``tp``/``fp``/``fn`` are
    None for a channel without labels; so are the point metrics and ``roc_auc``.
    """

    chan_id: str
    spacecraft: str
    model: BenchmarkModel
    n_train: int
    n_test: int
    sequences: tuple[tuple[int, int], ...]
    scores: tuple[float, ...]
    train_seconds: float
    normalized_pred_error: float
    counts: EventCounts | None = None
    point_precision: float | None = None
    point_recall: float | None = None
    point_f1: float | None = None
    roc_auc: float | None = None
    val_loss: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelRun:
    """Everything ``run_channel`` produced: per-model results and each forecaster's forecasts.

    ``predictions[kind]`` holds the test forecasts (test indices ``l_s`` on);
    ``predictions[f"{kind}_validation"]`` the forecasts of the train series' held-out tail, from
    train index ``validation_start(...) + l_s`` on, for choosing detection settings on training
    data only (absent with ``train.refit``, whose networks trained on that tail).
    """

    results: tuple[ChannelResult, ...]
    predictions: dict[str, npt.NDArray[np.float32]]


def train_forecaster(channel: Channel, settings: Settings, kind: Forecaster) -> TrainedModel:
    """Train one forecaster on the channel's train series (validation = its last windows)."""
    spec = replace(ModelSpec.from_settings(settings, channel.n_features), kind=kind)
    X, y = make_windows(channel.train, settings.windows.l_s, settings.windows.n_predictions)
    return train(spec, settings.train, X, y)


def validation_start(channel: Channel, settings: Settings) -> int:
    """Where the windows forecasting the train series' held-out tail begin.

    ``train`` holds out its last ``validation_split`` of the windows for early stopping. The
    one-step forecasts from this index on (``predict_series(model, channel.train[start:])``)
    have targets that no training window had among its ``n_predictions``: out-of-sample errors
    on training data, which detection settings may be chosen on without touching the test series.
    """
    l_s, n_pred = settings.windows.l_s, settings.windows.n_predictions
    n = len(channel.train) - l_s - n_pred + 1
    n_val = max(1, round(n * settings.train.validation_split))
    return n - n_val + n_pred - 1


def ensemble_errors(
    errors: dict[str, npt.NDArray[np.float32]], val_losses: dict[str, float]
) -> npt.NDArray[np.float32]:
    """The ensemble's error series: ``combine_errors`` with each model's held-out validation RMSE.

    Each forecaster's errors are divided by its own validation RMSE (known before any test data
    is seen), averaged and put back on the telemetry's scale (see
    ``pdm_ray.detection.ensemble``): the two models err on different scales, and averaging damps
    spikes that only one model makes while keeping those both see.
    """
    kinds = sorted(errors)
    return combine_errors([errors[k] for k in kinds], [max(float(np.sqrt(val_losses[k])), 1e-6) for k in kinds])


def _score(
    channel: Channel,
    model: BenchmarkModel,
    det: DetectionResult,
    errors: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    train_seconds: float,
    val_loss: float | None,
) -> ChannelResult:
    l_s = len(channel.test) - len(values)
    seqs = tuple((s.start + l_s, s.end + l_s) for s in det.sequences)
    scores = tuple(float(s.score) for s in det.sequences)
    value_range = float(values.max() - values.min())
    npe = float(np.mean(np.abs(errors)) / value_range) if value_range > 0 else float(np.mean(np.abs(errors)))
    result = ChannelResult(
        chan_id=channel.id,
        spacecraft=channel.spacecraft,
        model=model,
        n_train=len(channel.train),
        n_test=len(channel.test),
        sequences=seqs,
        scores=scores,
        train_seconds=train_seconds,
        normalized_pred_error=npe,
        val_loss=val_loss,
    )
    if not channel.has_labels:
        return result
    counts = score_events(list(seqs), list(channel.anomalies))
    label_mask = intervals_to_mask(channel.anomalies, len(channel.test))[l_s:]
    pred_mask = intervals_to_mask(seqs, len(channel.test))[l_s:]
    points = point_metrics(pred_mask, label_mask)
    # ROC-AUC ranks points by their smoothed error, the per-point score other papers use; the
    # threshold-relative point_scores also rank unusually *low* errors high (the inverted pass).
    auc = roc_auc(det.smoothed_errors, label_mask) if 0 < label_mask.sum() < len(label_mask) else None
    return replace(
        result,
        counts=counts,
        point_precision=points.precision,
        point_recall=points.recall,
        point_f1=points.f1,
        roc_auc=auc,
    )


def run_channel(channel: Channel, settings: Settings, model: BenchmarkModel) -> ChannelRun:
    """Train the requested forecaster(s) on ``channel`` and detect anomalies in its test series.

    ``model="ensemble"`` trains both forecasters and returns three results: each model alone
    and their combination, so one run yields the whole comparison.
    """
    predictions: dict[str, npt.NDArray[np.float32]] = {}
    val_losses: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for kind in _forecasters(model):
        start = time.perf_counter()
        trained = train_forecaster(channel, settings, kind)
        seconds[kind] = time.perf_counter() - start
        predictions[kind] = predict_series(trained, channel.test)
        if not settings.train.refit:  # a refit network trained on the tail: its forecasts there are in-sample
            predictions[f"{kind}_validation"] = predict_series(
                trained, channel.train[validation_start(channel, settings) :]
            )
        val_losses[kind] = trained.val_loss
        log.info("%s: trained %s in %.1fs (val_loss %.5f)", channel.id, kind, seconds[kind], trained.val_loss)
    return ChannelRun(detect_channel(channel, settings, model, predictions, val_losses, seconds), predictions)


def detect_channel(
    channel: Channel,
    settings: Settings,
    model: BenchmarkModel,
    predictions: dict[str, npt.NDArray[np.float32]],
    val_losses: dict[str, float],
    train_seconds: dict[str, float],
) -> tuple[ChannelResult, ...]:
    """Threshold and score a channel's test forecasts: the detection half of ``run_channel``.

    Apart so that stored forecasts (``predictions/<chan_id>.npz`` of a benchmark run) can be
    scored again, under another threshold config, without retraining. ``predictions`` maps each
    forecaster to its forecasts for test indices ``l_s`` on; ``val_losses`` (held-out
    validation MSE) weights the ensemble.
    """
    kinds = _forecasters(model)
    missing = [k for k in kinds if k not in predictions or k not in val_losses or k not in train_seconds]
    if missing:
        raise DataError(f"{channel.id}: model {model!r} needs {', '.join(missing)} forecasts, validation loss and time")
    values = channel.test[settings.windows.l_s :, 0]
    errors: dict[str, npt.NDArray[np.float32]] = {}
    for kind in kinds:
        if predictions[kind].shape != values.shape:
            raise DataError(
                f"{channel.id}: {kind} forecasts have shape {predictions[kind].shape}, "
                f"expected {values.shape} (test indices l_s={settings.windows.l_s} on)"
            )
        errors[kind] = (predictions[kind] - values).astype(np.float32)
    results = []
    for k in kinds:
        detection = detect(errors[k], values, settings.threshold)
        results.append(_score(channel, k, detection, errors[k], values, train_seconds[k], val_losses[k]))
    if model == "ensemble":
        combined = ensemble_errors(errors, val_losses)
        detection = detect(combined, values, settings.threshold)
        seconds = sum(train_seconds.values())
        results.append(_score(channel, "ensemble", detection, combined, values, seconds, None))
    return tuple(results)


def _forecasters(model: BenchmarkModel) -> tuple[Forecaster, ...]:
    return ("lstm", "transformer") if model == "ensemble" else (model,)
