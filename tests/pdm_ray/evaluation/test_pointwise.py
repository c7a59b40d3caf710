"""Point-wise metrics, interval masks and ROC-AUC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdm_ray.errors import DataError
from pdm_ray.evaluation import PointMetrics, intervals_to_mask, point_metrics, roc_auc


def test_intervals_to_mask_hand_checked() -> None:
    assert intervals_to_mask([(1, 2), (2, 4), (7, 7)], 8).astype(int).tolist() == [0, 1, 1, 1, 1, 0, 0, 1]
    assert not intervals_to_mask([], 3).any()
    with pytest.raises(DataError, match="past the series end"):
        intervals_to_mask([(2, 8)], 8)


def test_point_metrics_hand_checked_and_not_point_adjusted() -> None:
    label = intervals_to_mask([(2, 5)], 10)
    pred = intervals_to_mask([(5, 6)], 10)  # one point inside the label, one outside
    m = point_metrics(pred, label)
    assert m == PointMetrics(tp=1, fp=1, fn=3, tn=5)
    assert (m.precision, m.recall) == (0.5, 0.25)
    assert m.f1 == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    empty = point_metrics(np.zeros(4, bool), np.zeros(4, bool))
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)


def test_point_metrics_bad_input() -> None:
    with pytest.raises(DataError, match="differ in length"):
        point_metrics(np.zeros(3, bool), np.zeros(4, bool))
    with pytest.raises(DataError, match="boolean"):
        point_metrics(np.zeros(3), np.zeros(3, bool))


def test_roc_auc_perfect_inverted_and_ties() -> None:
    label = np.array([0, 0, 1, 1], dtype=bool)
    assert roc_auc([0.1, 0.2, 0.8, 0.9], label) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], label) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], label) == 0.5
    # hand count: pairs (pos, neg) = (0.3 vs 0.1, 0.2) wins 2, (0.15 vs 0.1) wins, vs 0.2 loses -> 3/4
    assert roc_auc([0.1, 0.2, 0.3, 0.15], label) == 0.75


def test_roc_auc_of_random_scores_is_near_one_half() -> None:
    rng = np.random.default_rng(0)
    label = rng.random(20000) < 0.1
    assert abs(roc_auc(rng.random(20000), label) - 0.5) < 0.02


@settings(max_examples=50, deadline=None)
@given(scores=arrays(np.float64, 12, elements=st.integers(0, 5).map(float)), label=arrays(bool, 12))
def test_roc_auc_matches_pair_counting(scores: np.ndarray, label: np.ndarray) -> None:
    if label.all() or not label.any():
        with pytest.raises(DataError, match="undefined"):
            roc_auc(scores, label)
        return
    pos, neg = scores[label], scores[~label]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(scores, label) == pytest.approx(pairs / (pos.size * neg.size))


def test_roc_auc_bad_input() -> None:
    with pytest.raises(DataError, match="non-finite"):
        roc_auc([0.1, np.nan], np.array([True, False]))
    with pytest.raises(DataError, match="1-D of one length"):
        roc_auc([0.1, 0.2, 0.3], np.array([True, False]))


def test_roc_curve_hand_computed_with_ties() -> None:
    from pdm_ray.evaluation import roc_curve

    scores = np.array([0.9, 0.8, 0.8, 0.1])
    labels = np.array([True, False, True, False])
    fpr, tpr = roc_curve(scores, labels)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    # the trapezoid area equals the rank-based AUC, ties counting one half
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, labels))
