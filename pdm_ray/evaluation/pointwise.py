"""Point-wise metrics: precision/recall/F1 of anomaly masks and ROC-AUC of point scores.

Never point-adjusted: a point counts only for itself (the "point adjustment" that marks a
whole labelled segment detected once one point of it is flagged inflates scores; see Kim et
al. 2022, "Towards a rigorous evaluation of time-series anomaly detection"). Ratios with a
zero denominator are 0.0, as in ``pdm_ray.evaluation.events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import DataError
from pdm_ray.evaluation.events import as_intervals, f_beta, ratio


def intervals_to_mask(intervals: Sequence[tuple[int, int]] | npt.ArrayLike, n: int) -> npt.NDArray[np.bool_]:
    """A bool ``[n]`` mask that is True inside the inclusive ``(start, end)`` intervals.

    Raises:
        DataError: an interval is malformed or reaches past ``n - 1``.
    """
    if n < 0:
        raise DataError(f"mask length must be >= 0, got {n}")
    arr = as_intervals(intervals, "intervals")
    if arr.shape[0] and arr[:, 1].max() >= n:
        worst = int(np.argmax(arr[:, 1]))
        raise DataError(f"interval {arr[worst].tolist()} reaches past the series end (length {n})")
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, arr[:, 0], 1)
    np.add.at(delta, arr[:, 1] + 1, -1)
    return np.cumsum(delta[:n]) > 0


def _masks(pred_mask: npt.ArrayLike, label_mask: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    pred = np.asarray(pred_mask)
    true = np.asarray(label_mask)
    if pred.ndim != 1 or true.ndim != 1:
        raise DataError(f"masks must be 1-D, got shapes {pred.shape} and {true.shape}")
    if pred.shape != true.shape:
        raise DataError(f"prediction and label masks differ in length: {pred.size} != {true.size}")
    if pred.dtype != np.bool_ or true.dtype != np.bool_:
        raise DataError(f"masks must be boolean, got dtypes {pred.dtype} and {true.dtype}")
    return pred, true


@dataclass(frozen=True)
class PointMetrics:
    """Confusion counts of a point-wise anomaly mask and the ratios derived from them."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return f_beta(self.precision, self.recall, 1.0)


def point_metrics(pred_mask: npt.ArrayLike, label_mask: npt.ArrayLike) -> PointMetrics:
    """Point-wise confusion counts of two bool masks ``[n]`` (no point adjustment)."""
    pred, true = _masks(pred_mask, label_mask)
    return PointMetrics(
        tp=int(np.sum(pred & true)),
        fp=int(np.sum(pred & ~true)),
        fn=int(np.sum(~pred & true)),
        tn=int(np.sum(~pred & ~true)),
    )


def roc_auc(scores: npt.ArrayLike, label_mask: npt.ArrayLike) -> float:
    """Area under the ROC curve of per-point scores ``[n]`` against a bool mask ``[n]``.

    The Mann-Whitney form: the probability that a random anomalous point scores above a
    random nominal one, ties counting one half (average ranks).

    Raises:
        DataError: shapes differ, scores are not finite, or one class is missing (AUC undefined).
    """
    from scipy.stats import rankdata  # 3 s to import: not on the CLI's start-up path

    s = np.asarray(scores, dtype=np.float64)
    true = np.asarray(label_mask)
    if s.ndim != 1 or s.shape != true.shape:
        raise DataError(f"scores {s.shape} and label mask {true.shape} must be 1-D of one length")
    if true.dtype != np.bool_:
        raise DataError(f"label mask must be boolean, got dtype {true.dtype}")
    if not np.all(np.isfinite(s)):
        raise DataError(f"scores have {int(np.sum(~np.isfinite(s)))} non-finite value(s)")
    positives = int(true.sum())
    negatives = true.size - positives
    if positives == 0 or negatives == 0:
        raise DataError(f"ROC-AUC is undefined with {positives} anomalous and {negatives} nominal points")
    ranks = rankdata(s)
    return float((ranks[true].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(
    scores: npt.ArrayLike, label_mask: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """False- and true-positive rates ``([k], [k])`` at every distinct score threshold, from (0, 0) to (1, 1).

    Raises:
        DataError: as ``roc_auc`` (shapes, non-finite scores, a missing class).
    """
    roc_auc(scores, label_mask)  # same validation
    s = np.asarray(scores, dtype=np.float64)
    true = np.asarray(label_mask)
    order = np.argsort(-s, kind="mergesort")
    s, true = s[order], true[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(true)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr
