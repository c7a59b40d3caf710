"""Event-level scoring (Telemanom's rule) and aggregation of counts."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdm_ray.errors import DataError
from pdm_ray.evaluation import EventCounts, score_events, summarize, total_counts

FULL_SMAP = Path(__file__).resolve().parents[4] / "shared" / "data" / "nasa_smap"


def test_overlap_is_a_true_positive_and_the_rest_false() -> None:
    # [0,5] hits [5,9] by one shared point; [20,25] hits nothing; label [40,50] is missed.
    counts = score_events([(0, 5), (20, 25)], [(5, 9), (40, 50)])
    assert counts == EventCounts(tp=1, fp=1, fn=1)


def test_touching_but_not_overlapping_is_no_hit() -> None:
    assert score_events([(0, 4)], [(5, 9)]) == EventCounts(tp=0, fp=1, fn=1)


def test_two_predictions_on_one_label_are_one_tp_and_no_fp() -> None:
    assert score_events([(10, 12), (14, 30)], [(11, 20)]) == EventCounts(tp=1, fp=0, fn=0)


def test_one_prediction_spanning_two_labels_hits_both() -> None:
    assert score_events([(0, 100)], [(10, 20), (50, 60)]) == EventCounts(tp=2, fp=0, fn=0)


def test_containment_either_way_is_a_hit() -> None:
    assert score_events([(12, 13)], [(10, 20)]).tp == 1
    assert score_events([(5, 25)], [(10, 20)]).tp == 1


def test_empty_sets_and_zero_division() -> None:
    nothing = score_events([], [])
    assert nothing == EventCounts(0, 0, 0)
    assert (nothing.precision, nothing.recall, nothing.f1, nothing.f05) == (0.0, 0.0, 0.0, 0.0)
    missed = score_events([], [(1, 2)])
    assert missed == EventCounts(tp=0, fp=0, fn=1) and missed.precision == 0.0
    assert score_events([(1, 2)], []) == EventCounts(tp=0, fp=1, fn=0)


def test_ratios_hand_checked() -> None:
    c = EventCounts(tp=3, fp=1, fn=2)
    assert c.precision == pytest.approx(0.75)
    assert c.recall == pytest.approx(0.6)
    assert c.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert c.f05 == pytest.approx(1.25 * 0.75 * 0.6 / (0.25 * 0.75 + 0.6))


def test_sum_per_spacecraft_and_total() -> None:
    per_channel = {"A-1": EventCounts(1, 0, 0), "A-2": EventCounts(0, 2, 1), "M-1": EventCounts(2, 1, 0)}
    summary = summarize(per_channel, {"A-1": "SMAP", "A-2": "SMAP", "M-1": "MSL"})
    assert summary.by_group == {"SMAP": EventCounts(1, 2, 1), "MSL": EventCounts(2, 1, 0)}
    assert summary.total == EventCounts(3, 3, 1) == total_counts(per_channel.values())
    assert total_counts([]) == EventCounts()
    with pytest.raises(DataError, match="M-1"):
        summarize(per_channel, {"A-1": "SMAP", "A-2": "SMAP"})


@pytest.mark.parametrize(
    ("bad", "match"),
    [([(5, 3)], "inclusive pair"), ([(-1, 3)], "inclusive pair"), ([(1, 2, 3)], "pairs"), ([(0.5, 2)], "integer")],
)
def test_malformed_intervals_raise(bad: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        score_events(bad, [(0, 1)])


def test_counts_must_be_non_negative_integers() -> None:
    with pytest.raises(DataError, match="fp"):
        EventCounts(tp=1, fp=-1, fn=0)
    with pytest.raises(DataError, match="tp"):
        EventCounts(tp=1.5, fp=0, fn=0)


intervals = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])), max_size=8)


@given(predicted=intervals, labels=intervals)
def test_counts_are_consistent(predicted: list, labels: list) -> None:
    c = score_events(predicted, labels)
    assert c.tp + c.fn == len(labels)
    assert c.fp <= len(predicted)
    assert 0.0 <= c.precision <= 1.0 and 0.0 <= c.recall <= 1.0
    assert score_events(labels, labels) == EventCounts(tp=len(labels), fp=0, fn=0)


@pytest.mark.skipif(not FULL_SMAP.exists(), reason="full SMAP set (../shared/data/nasa_smap) is absent")
def test_reproduces_the_published_telemanom_counts() -> None:
    # The published results file lists each channel's predicted sequences and its TP/FP/FN;
    # rescoring the sequences must give the same counts, 62 / 12 / 7 over SMAP.
    with (FULL_SMAP / "telemanom_reference_results.csv").open() as f:
        rows = list(csv.DictReader(f))
    total = EventCounts()
    for row in rows:
        predicted = ast.literal_eval(row["tp_sequences"]) + ast.literal_eval(row["fp_sequences"])
        counts = score_events(predicted, ast.literal_eval(row["anomaly_sequences"]))
        published = EventCounts(int(row["true_positives"]), int(row["false_positives"]), int(row["false_negatives"]))
        assert counts == published, row["chan_id"]
        total = total + counts
    assert total == EventCounts(tp=62, fp=12, fn=7)
    assert (round(total.precision, 3), round(total.recall, 3), round(total.f1, 3)) == (0.838, 0.899, 0.867)
