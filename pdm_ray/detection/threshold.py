"""Telemanom's nonparametric dynamic threshold (Hundman et al. 2018, arXiv:1802.04431).

The smoothed errors ``e_s`` are cut into windows of ``h = batch_size * window_size`` points
that step one batch at a time; the first window judges all its points, every later one only
the batch it added (its *new region*; the last window covers
the tail, so its new region is ``batch_size`` plus the remainder). In a series of at least
``h`` points no window flags the first ``ignore_first`` (Telemanom's ``2 * l_s``: the smoothed
errors of a series' first points have too little history); they count as nominal when a window
prunes. A shorter series is judged from its first point (but ``warmup`` still flattens the
start of its smoothed errors, all of them in a series of ``warmup`` points or fewer). In each
window (section 3.2 of the paper):

1. ``find_epsilon``: epsilon = mean + z * std maximizing
   ``(dmean / mean + dstd / std) / (|E_seq|**2 + |e_a|)``, where ``dmean``, ``dstd`` are the
   decreases of the mean and std once the values >= epsilon are removed (the paper's
   ``mu({e_s | e_s < epsilon})``), ``|e_a|`` counts the flagged points (those values and their
   ``error_buffer`` neighbours, as the reference implementation counts) and ``|E_seq|`` their
   contiguous sequences. A candidate must decrease both mean and std, make at
   most ``max_sequences`` sequences and flag less than ``max_anomalous_fraction`` of the
   window (the reference implementation's guard rails); with no candidate the window flags
   nothing.
2. The same search runs on the errors mirrored around the window mean
   (``mean + (mean - e_s)``), so that drops of the error are caught too.
3. ``error_scale_ok``: a window whose errors are small next to its values is skipped.
4. Points above epsilon (and above ``relative_error_scale`` times the values' 5-95 % range)
   are spread by ``error_buffer`` on each side into sequences, cut to the window's new
   region; ``prune_sequences`` then drops the tail of the sequences whose maxima are not
   clearly above the next lower one or above the largest nominal error (minimum relative
   drop ``p``, section 3.3). The nominal errors are all the window's points that neither
   this window nor an earlier one flagged, so an old peak that no window flagged still
   raises the bar for the new region (``prune_scope="new_region"``, as the reference
   implementation prunes). ``prune_scope="window"`` instead prunes the uncut sequences of
   the whole window against the points outside all of them, then keeps the new region.
5. Each kept sequence scores ``(max e_s in it - epsilon) / (mean(e_s) + std(e_s))``.

Deliberate differences from the reference code: the new region of the last window is
extended to the end of the series (the reference leaves up to ``batch_size - 1`` points
before the last batch unjudged), single-point sequences are kept, ``ignore_first`` is one
count for every series of ``h`` points or more (the reference ignores ``2 * l_s`` points of a
series of 2,500 or more, ``l_s`` below that and none below 1,800, which a stream of unknown
length cannot know; every SMAP test series is longer than 2,500), a window without a candidate flags
nothing (the reference falls back to ``z_max``), and the value range is the 5-95 %
percentile range as in the reference implementation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pdm_ray.config import ThresholdSettings
from pdm_ray.detection.smoothing import as_series, smooth_errors
from pdm_ray.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnomalySequence:
    """An anomalous sequence: inclusive indices into the errors array and its score."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class DetectionResult:
    """The output of ``detect`` on a series of ``n`` errors.

    Attributes:
        sequences: anomalous sequences, sorted, non-overlapping, inclusive.
        smoothed_errors: ``e_s``, float32 ``[n]``.
        threshold: the epsilon of the window that judged each point, float32 ``[n]`` (for
            plots); a window without a candidate shows ``mean + z_max * std``.
        point_scores: ``max((e_s - epsilon), (e_inv - epsilon_inv)) / (mean + std)`` of the
            judging window, float32 ``[n]``: a continuous score for ROC-AUC (positive means
            above a threshold, whether or not the window was skipped or pruned).
    """

    sequences: tuple[AnomalySequence, ...]
    smoothed_errors: npt.NDArray[np.float32] = field(repr=False)
    threshold: npt.NDArray[np.float32] = field(repr=False)
    point_scores: npt.NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class WindowResult:
    """What one window decides about its points (arrays have the window's length ``m``).

    Attributes:
        epsilon: threshold of the errors (``mean + z_max * std`` without a candidate).
        epsilon_inverted: threshold of the mirrored errors (same fallback).
        flagged: bool ``[m]``, anomalous points; only the new region can be True.
        scores: float32 ``[m]``, score of the sequence each flagged point belongs to, -inf elsewhere.
        point_scores: float32 ``[m]``, see ``DetectionResult.point_scores``.
    """

    epsilon: float
    epsilon_inverted: float
    flagged: npt.NDArray[np.bool_] = field(repr=False)
    scores: npt.NDArray[np.float32] = field(repr=False)
    point_scores: npt.NDArray[np.float32] = field(repr=False)


def candidate_z(config: ThresholdSettings) -> npt.NDArray[np.float64]:
    """The z values searched: ``z_min, z_min + z_step, ...`` up to ``z_max`` inclusive, ``[k]``."""
    count = int(np.floor((config.z_max - config.z_min) / config.z_step + 1e-9)) + 1
    return config.z_min + config.z_step * np.arange(count, dtype=np.float64)


def window_bounds(n: int, batch_size: int, window_size: int) -> npt.NDArray[np.int64]:
    """Telemanom's threshold windows over ``n`` points, as ``[k, 3]`` rows ``(start, new, end)``.

    Window ``i`` covers ``[i * batch_size, i * batch_size + h)`` with ``h = batch_size *
    window_size``; there are ``(n - h) // batch_size + 1`` of them and the last one ends at
    ``n``. ``new`` is where the window's new region starts (the previous window's end; 0 for
    the first). A series shorter than ``h`` is one window over everything.
    """
    if n < 1:
        raise DataError(f"need at least one point to make threshold windows, got n={n}")
    h = batch_size * window_size
    if n < h:
        return np.array([[0, 0, n]], dtype=np.int64)
    starts = np.arange((n - h) // batch_size + 1, dtype=np.int64) * batch_size
    ends = starts + h
    ends[-1] = n
    news = np.concatenate([[0], ends[:-1]])
    return np.stack([starts, news, ends], axis=1)


def buffer_mask(mask: npt.NDArray[np.bool_], buffer: int) -> npt.NDArray[np.bool_]:
    """Spread each True of ``mask`` to ``buffer`` neighbours on each side (last axis).

    ``[..., m]`` bool -> ``[..., m]`` bool; a sliding-window count over a cumulative sum.
    """
    mask = np.asarray(mask, dtype=bool)
    m = mask.shape[-1]
    counts = np.cumsum(mask, axis=-1, dtype=np.int64)
    counts = np.concatenate([np.zeros((*mask.shape[:-1], 1), dtype=np.int64), counts], axis=-1)
    idx = np.arange(m)
    hi = np.minimum(idx + buffer + 1, m)
    lo = np.maximum(idx - buffer, 0)
    return (counts[..., hi] - counts[..., lo]) > 0


def mask_to_runs(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Contiguous runs of True in a 1-D mask as ``[k, 2]`` inclusive ``(start, end)`` rows."""
    padded = np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]])
    edges = np.diff(padded)
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1], axis=1).astype(np.int64)


def run_maxima(values: npt.NDArray[np.floating], runs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The maximum of ``values`` over each inclusive run of ``runs`` ``[k, 2]`` -> ``[k]``."""
    if runs.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    padded = np.append(np.asarray(values, dtype=np.float64), -np.inf)
    bounds = np.stack([runs[:, 0], runs[:, 1] + 1], axis=1).ravel()
    return np.maximum.reduceat(padded, bounds)[::2]


def find_epsilon(e_s: npt.NDArray[np.floating], config: ThresholdSettings) -> float | None:
    """The paper's epsilon for one window of (smoothed, maybe mirrored) errors ``[m]``.

    All candidates ``z`` are evaluated at once. Only points above the lowest candidate can be
    flagged, so the counts are on a ``[k, a]`` grid of those ``a`` points (few, in a nominal
    window), not on ``[k, m]``: walking each row's flagged points left to right, a point's
    buffered interval ``[p - b, p + b]`` adds only the part past the previous one. The kept
    mean and spread (of the values below each epsilon) come from prefix sums of the sorted
    ``e`` and ``e**2``. Ties (equal within rounding, as
    when two candidates flag the same points) go to the larger ``z``, as in the reference
    implementation. Returns None when no candidate passes the guard rails, or when the window
    has zero mean or zero spread (nothing to separate).
    """
    e = np.asarray(e_s, dtype=np.float64)
    return _epsilon(e, float(e.mean()), float(e.std()), config)


def _epsilon(e: npt.NDArray[np.float64], mean: float, std: float, config: ThresholdSettings) -> float | None:
    """``find_epsilon`` given the window's mean and spread (``evaluate_window`` has them)."""
    if not (mean > 0 and std > 0):
        return None
    m = e.size
    epsilons = mean + candidate_z(config) * std
    pos = np.flatnonzero(e >= epsilons[0])
    if pos.size == 0:
        return None
    b = config.error_buffer
    active = e[pos][None, :] >= epsilons[:, None]  # [k, a]
    far = -(2 * b + 2) - m  # a "previous point" too far left to touch anything
    prev = np.maximum.accumulate(np.where(active, pos[None, :], far), axis=1)
    prev = np.concatenate([np.full((len(epsilons), 1), far), prev[:, :-1]], axis=1)
    lo = np.maximum(np.maximum(pos - b, 0)[None, :], prev + b + 1)
    hi = np.minimum(pos + b, m - 1)[None, :] + 1
    adds = active & (lo < hi)
    n_flagged = np.where(adds, hi - lo, 0).sum(axis=1)
    n_sequences = (active & (pos[None, :] - prev > 2 * b + 1)).sum(axis=1)
    ordered = np.sort(e)
    csum = np.concatenate([[0.0], np.cumsum(ordered)])
    csq = np.concatenate([[0.0], np.cumsum(ordered * ordered)])
    n_kept = np.searchsorted(ordered, epsilons, side="left")  # values < epsilon
    safe_n = np.maximum(n_kept, 1)
    kept_mean = csum[n_kept] / safe_n
    kept_sq = csq[n_kept] / safe_n
    kept_std = np.sqrt(np.maximum(kept_sq - kept_mean**2, 0.0))
    d_mean, d_std = mean - kept_mean, std - kept_std
    valid = (
        (n_flagged > 0)
        & (n_kept > 0)
        & (d_mean > 0)
        & (d_std > 0)
        & (n_sequences <= config.max_sequences)
        & (n_flagged < config.max_anomalous_fraction * m)
    )
    if not valid.any():
        return None
    cost = np.maximum(n_sequences**2 + n_flagged, 1)
    objective = np.where(valid, (d_mean / mean + d_std / std) / cost, -np.inf)
    best = np.flatnonzero(objective >= objective.max() * (1 - 1e-9))[-1]
    return float(epsilons[best])


def error_scale_ok(e_s: npt.NDArray[np.floating], values: npt.NDArray[np.floating], config: ThresholdSettings) -> bool:
    """False when a window's errors are too small to matter (Telemanom's check).

    Skip unless ``std(e_s) > r * std(values)`` or ``max(e_s) > r * (p95 - p5 of values)``,
    and unless ``max(e_s) > min_error_scale``; ``r`` is ``relative_error_scale``.
    """
    v = np.asarray(values, dtype=np.float64)
    low, high = np.percentile(v, [5, 95])
    return _scale_ok(np.asarray(e_s, dtype=np.float64), float(v.std()), float(high - low), config)


def _scale_ok(e: npt.NDArray[np.float64], value_std: float, value_range: float, config: ThresholdSettings) -> bool:
    """``error_scale_ok`` given the values' spread and p95 - p5 range (computed once per window)."""
    r = config.relative_error_scale
    e_max = float(e.max())
    relative = float(e.std()) > r * value_std or e_max > r * value_range
    return relative and e_max > config.min_error_scale


def prune_sequences(maxima: npt.NDArray[np.floating], nominal_max: float | None, p: float) -> npt.NDArray[np.bool_]:
    """Which sequences survive the paper's pruning (section 3.3), ``[k]`` -> bool ``[k]``.

    The maxima, sorted descending, get the largest nominal error appended; walking down,
    a sequence whose relative drop to the next value ``(e_i - e_{i+1}) / e_i`` is below ``p``
    is reclassified as nominal, but only the tail after the last drop ``>= p`` is removed.
    Without a nominal value the smallest maximum is compared with 0 (a drop of 1).

    A sequence whose maximum is not above the nominal maximum (nor above 0) is nominal and
    joins no ladder. Such a sequence is made of ``error_buffer`` points alone, where the
    buffer around an earlier point reaches into the new region; on the inverted errors its
    maximum can be negative. On the ladder, that value read as a huge drop and kept every
    sequence above it (the reference code has the same arithmetic).
    """
    maxima = np.asarray(maxima, dtype=np.float64)
    floor = 0.0 if nominal_max is None else max(nominal_max, 0.0)
    keep = np.zeros(maxima.size, dtype=bool)
    candidates = np.flatnonzero(maxima > floor)
    if candidates.size == 0:
        return keep
    order = candidates[np.argsort(-maxima[candidates], kind="stable")]
    ladder = np.append(maxima[order], 0.0 if nominal_max is None else nominal_max)
    drops = (ladder[:-1] - ladder[1:]) / ladder[:-1]
    big = np.flatnonzero(drops >= p)
    keep[order] = np.arange(order.size) <= (big[-1] if big.size else -1)
    return keep


def evaluate_window(
    e_s: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    prior_flagged: npt.NDArray[np.bool_],
    new_start: int,
    config: ThresholdSettings,
) -> WindowResult:
    """Judge one window: both passes, the scale check, buffering, pruning and scores.

    Args:
        e_s: smoothed errors of the window ``[m]``.
        values: true values of the same points ``[m]``.
        prior_flagged: bool ``[m]``, points earlier windows flagged (excluded from the
            nominal maximum used by pruning).
        new_start: offset of the window's new region; points before it are never flagged
            (and, with ``prune_scope="new_region"``, count as nominal unless flagged before).
        config: threshold settings.
    """
    e = np.asarray(e_s, dtype=np.float64)
    m = e.size
    mean, std = float(e.mean()), float(e.std())
    scale = mean + std if mean + std > 0 else 1.0
    v = np.asarray(values, dtype=np.float64)
    low, high = np.percentile(v, [5, 95])
    min_error = config.relative_error_scale * (high - low)
    active = _scale_ok(e, float(v.std()), float(high - low), config)
    flagged = np.zeros(m, dtype=bool)
    scores = np.full(m, -np.inf)
    point_scores = np.full(m, -np.inf)
    shown: list[float] = []
    for series in (e, 2.0 * mean - e):
        epsilon = _epsilon(series, mean, std, config)
        shown.append(mean + config.z_max * std if epsilon is None else epsilon)
        point_scores = np.maximum(point_scores, (series - shown[-1]) / scale)
        if epsilon is None or not active:
            continue
        above = (series >= epsilon) & (series > min_error)
        if not above.any():
            continue
        spread = buffer_mask(above, config.error_buffer)
        if config.prune_scope == "new_region":
            spread[:new_start] = False
            if not spread.any():
                continue
        runs = mask_to_runs(spread)
        maxima = run_maxima(series, runs)
        nominal = ~spread & ~np.asarray(prior_flagged, dtype=bool)
        nominal_max = float(series[nominal].max()) if nominal.any() else None
        keep = prune_sequences(maxima, nominal_max, config.p)
        run_of = np.cumsum(np.diff(spread.astype(np.int8), prepend=0) == 1) - 1
        run_of = np.where(spread, run_of, 0)
        kept = spread & keep[run_of]
        flagged |= kept
        scores = np.where(kept, np.maximum(scores, ((maxima - epsilon) / scale)[run_of]), scores)
    flagged[:new_start] = False
    scores[~flagged] = -np.inf
    return WindowResult(
        epsilon=shown[0],
        epsilon_inverted=shown[1],
        flagged=flagged,
        scores=scores.astype(np.float32),
        point_scores=point_scores.astype(np.float32),
    )


def runs_to_sequences(
    flagged: npt.NDArray[np.bool_], scores: npt.NDArray[np.floating], offset: int = 0
) -> list[AnomalySequence]:
    """Group flagged points ``[n]`` into sequences scored by the max of ``scores`` ``[n]`` in each.

    ``offset`` is added to the indices (for a segment of a longer series).
    """
    runs = mask_to_runs(flagged)
    maxima = run_maxima(scores, runs)
    return [
        AnomalySequence(start=int(s) + offset, end=int(t) + offset, score=float(np.float32(x)))
        for (s, t), x in zip(runs, maxima, strict=True)
    ]


def detect(errors: npt.ArrayLike, values: npt.ArrayLike, config: ThresholdSettings) -> DetectionResult:
    """Anomalous sequences of a series of prediction errors, with Telemanom's threshold.

    Args:
        errors: raw prediction errors ``y_hat - y``, ``[n]``.
        values: true values ``y`` at the same indices, ``[n]`` (for the error-scale check).
        config: threshold settings.

    Raises:
        DataError: the arrays are empty, not 1-D, of different lengths or not finite.
    """
    err = as_series(errors, "errors")
    vals = as_series(values, "values")
    if err.size == 0:
        raise DataError("errors is empty: need at least one prediction error")
    if err.size != vals.size:
        raise DataError(f"errors and values differ in length: {err.size} != {vals.size}")
    n = err.size
    e_s = smooth_errors(err, config)
    flagged = np.zeros(n, dtype=bool)
    scores = np.full(n, -np.inf, dtype=np.float32)
    threshold = np.empty(n, dtype=np.float32)
    point_scores = np.empty(n, dtype=np.float32)
    bounds = window_bounds(n, config.batch_size, config.window_size)
    ignore = config.ignore_first if n >= config.batch_size * config.window_size else 0
    for start, new, end in bounds:
        judge_from = max(int(new), min(ignore, int(end))) - int(start)
        result = evaluate_window(e_s[start:end], vals[start:end], flagged[start:end], judge_from, config)
        flagged[new:end] = result.flagged[new - start :]
        scores[new:end] = result.scores[new - start :]
        threshold[new:end] = result.epsilon
        point_scores[new:end] = result.point_scores[new - start :]
    sequences = tuple(runs_to_sequences(flagged, scores))
    logger.debug("threshold: %d points, %d windows, %d sequences", n, len(bounds), len(sequences))
    return DetectionResult(sequences=sequences, smoothed_errors=e_s, threshold=threshold, point_scores=point_scores)


def find_anomalies(errors: npt.ArrayLike, values: npt.ArrayLike, config: ThresholdSettings) -> list[AnomalySequence]:
    """The anomalous sequences of ``detect(errors, values, config)``."""
    return list(detect(errors, values, config).sequences)
