"""Event-level scoring of anomalous sequences, as in Telemanom (Hundman et al. 2018, section 4).

A predicted sequence that overlaps a labelled one makes that label a true positive, once:
several predictions on one label are still one TP, and none of them is a false positive.
A prediction overlapping no label is a false positive; a label no prediction overlaps is a
false negative. One prediction spanning two labels makes both of them TPs. Counts add up
across channels, so a spacecraft's (or the whole set's) precision and recall come from
summed counts, not averaged ratios.

Zero division: every ratio whose denominator is 0 is 0.0 (no predictions -> precision 0.0,
no labels -> recall 0.0, and then F-scores 0.0), as with ``zero_division=0`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import DataError


def ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


def f_beta(precision: float, recall: float, beta: float) -> float:
    """The F-beta score; 0.0 when precision and recall are both 0."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    return (1 + b2) * precision * recall / denominator if denominator else 0.0


@dataclass(frozen=True)
class EventCounts:
    """True positives, false positives and false negatives of event-level scoring."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "fn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise DataError(f"EventCounts.{name} must be a non-negative integer, got {value!r}")

    def __add__(self, other: EventCounts) -> EventCounts:
        if not isinstance(other, EventCounts):
            return NotImplemented
        return EventCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 0.0 without predictions."""
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 0.0 without labels."""
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return f_beta(self.precision, self.recall, 1.0)

    @property
    def f05(self) -> float:
        """F0.5: weighs precision twice as much as recall (alarms cost operator time)."""
        return f_beta(self.precision, self.recall, 0.5)


def as_intervals(intervals: Sequence[tuple[int, int]] | npt.ArrayLike, name: str) -> npt.NDArray[np.int64]:
    """Inclusive ``(start, end)`` pairs as an ``[k, 2]`` int64 array; raises DataError if malformed."""
    arr = np.asarray(intervals)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"{name} must be (start, end) pairs, got shape {arr.shape}")
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.floating) and bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr)))
    )
    if not integral:
        raise DataError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr[:, 0] < 0) | (arr[:, 1] < arr[:, 0]))
    if bad.size:
        raise DataError(f"{name}[{bad[0]}] = {arr[bad[0]].tolist()} is not an inclusive pair 0 <= start <= end")
    return arr


def score_events(
    predicted: Sequence[tuple[int, int]] | npt.ArrayLike, labels: Sequence[tuple[int, int]] | npt.ArrayLike
) -> EventCounts:
    """Telemanom's event-level counts of inclusive predicted vs. labelled sequences.

    Args:
        predicted: ``[p, 2]`` inclusive ``(start, end)`` pairs.
        labels: ``[l, 2]`` inclusive ``(start, end)`` pairs.
    """
    pred = as_intervals(predicted, "predicted")
    true = as_intervals(labels, "labels")
    overlap = (pred[:, None, 0] <= true[None, :, 1]) & (true[None, :, 0] <= pred[:, None, 1])
    tp = int(overlap.any(axis=0).sum())
    fp = int((~overlap.any(axis=1)).sum())
    return EventCounts(tp=tp, fp=fp, fn=true.shape[0] - tp)


@dataclass(frozen=True)
class EventSummary:
    """Counts summed per group (e.g. spacecraft) and over everything."""

    by_group: Mapping[str, EventCounts]
    total: EventCounts


def summarize(per_channel: Mapping[str, EventCounts], group_of: Mapping[str, str]) -> EventSummary:
    """Sum per-channel counts per group (``group_of[channel]``, e.g. the spacecraft) and in total.

    Raises:
        DataError: a channel has no group.
    """
    missing = sorted(set(per_channel) - set(group_of))
    if missing:
        raise DataError(f"no group (spacecraft) for channel(s) {missing}")
    by_group: dict[str, EventCounts] = {}
    for channel, counts in sorted(per_channel.items()):
        group = group_of[channel]
        by_group[group] = by_group.get(group, EventCounts()) + counts
    return EventSummary(by_group=by_group, total=total_counts(per_channel.values()))


def total_counts(counts: Iterable[EventCounts]) -> EventCounts:
    """The sum of event counts (``EventCounts()`` for none)."""
    total = EventCounts()
    for c in counts:
        total = total + c
    return total
