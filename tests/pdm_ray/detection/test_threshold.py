"""Telemanom's dynamic threshold: each step on hand-made cases, then the whole detector."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdm_ray.config import ThresholdSettings
from pdm_ray.detection import AnomalySequence, detect, find_anomalies
from pdm_ray.detection.threshold import (
    buffer_mask,
    candidate_z,
    error_scale_ok,
    evaluate_window,
    find_epsilon,
    mask_to_runs,
    prune_sequences,
    run_maxima,
    window_bounds,
)
from pdm_ray.errors import DataError

SMALL = ThresholdSettings(batch_size=10, window_size=5, smoothing_perc=0.1, error_buffer=3, warmup=5, ignore_first=10)


def test_candidate_z_default_grid_is_inclusive() -> None:
    z = candidate_z(ThresholdSettings())
    assert z.size == 20 and z[0] == 2.5 and z[-1] == 12.0
    assert candidate_z(ThresholdSettings(z_min=3.0, z_max=3.0)).tolist() == [3.0]


def test_window_bounds_hand_checked() -> None:
    # h = 6: windows [0, 6), [2, 8), [4, 10); new regions [0, 6), [6, 8), [8, 10)
    np.testing.assert_array_equal(window_bounds(10, 2, 3), [[0, 0, 6], [2, 6, 8], [4, 8, 10]])
    # n = 11: still (11 - 6) // 2 + 1 = 3 windows; the last one covers the tail
    np.testing.assert_array_equal(window_bounds(11, 2, 3), [[0, 0, 6], [2, 6, 8], [4, 8, 11]])
    np.testing.assert_array_equal(window_bounds(5, 2, 3), [[0, 0, 5]])


@given(n=st.integers(1, 500), b=st.integers(1, 20), w=st.integers(1, 10))
def test_window_new_regions_partition_the_series(n: int, b: int, w: int) -> None:
    bounds = window_bounds(n, b, w)
    h = b * w
    assert len(bounds) == ((n - h) // b + 1 if n >= h else 1)
    assert bounds[0, 1] == 0 and bounds[-1, 2] == n
    np.testing.assert_array_equal(bounds[1:, 1], bounds[:-1, 2])
    assert np.all(bounds[:, 0] <= bounds[:, 1]) and np.all(bounds[:, 1] < bounds[:, 2])


def test_window_bounds_rejects_empty() -> None:
    with pytest.raises(DataError, match="n=0"):
        window_bounds(0, 70, 30)


def test_buffer_mask_hand_checked() -> None:
    mask = np.array([0, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    assert buffer_mask(mask, 1).astype(int).tolist() == [0, 1, 1, 1, 0, 0, 1, 1]
    np.testing.assert_array_equal(buffer_mask(mask, 0), mask)
    rows = buffer_mask(np.stack([mask, np.zeros(8, bool)]), 2)
    assert rows[0].astype(int).tolist() == [1, 1, 1, 1, 1, 1, 1, 1] and not rows[1].any()


@given(mask=arrays(bool, st.integers(1, 60)), buffer=st.integers(0, 10))
def test_buffer_mask_matches_naive_dilation(mask: np.ndarray, buffer: int) -> None:
    naive = np.array([mask[max(0, i - buffer) : i + buffer + 1].any() for i in range(mask.size)])
    np.testing.assert_array_equal(buffer_mask(mask, buffer), naive)


def test_mask_to_runs_and_maxima_hand_checked() -> None:
    runs = mask_to_runs(np.array([1, 1, 0, 1, 0, 0, 1], dtype=bool))
    assert runs.tolist() == [[0, 1], [3, 3], [6, 6]]
    assert run_maxima(np.array([1.0, 4.0, 9.0, 2.0, 9.0, 9.0, 3.0]), runs).tolist() == [4.0, 2.0, 3.0]
    assert mask_to_runs(np.zeros(4, bool)).shape == (0, 2)


def test_find_epsilon_single_spike_takes_largest_tied_z() -> None:
    # 19 ones and a 10, no buffer: z in {2.5, 3, 3.5, 4} all flag just the spike (same
    # objective); the largest, 4, wins the tie. z >= 4.5 flags nothing.
    e = np.array([1.0] * 19 + [10.0])
    config = ThresholdSettings(error_buffer=0)
    assert find_epsilon(e, config) == pytest.approx(e.mean() + 4.0 * e.std())


def test_find_epsilon_guard_rails() -> None:
    e = np.ones(60)
    e[::10] = 10.0  # six separate spikes -> six sequences at every z
    assert find_epsilon(e, ThresholdSettings(error_buffer=0)) is None
    assert find_epsilon(e, ThresholdSettings(error_buffer=0, max_sequences=6)) is not None
    assert find_epsilon(np.full(10, 0.3), ThresholdSettings()) is None  # no spread
    assert find_epsilon(np.zeros(10), ThresholdSettings()) is None


def _naive_epsilon(e: np.ndarray, config: ThresholdSettings) -> float | None:
    """Loop-per-candidate reading of the paper's objective, as an oracle."""
    mean, std = e.mean(), e.std()
    if not (mean > 0 and std > 0):
        return None
    best, best_score = None, -np.inf
    for z in candidate_z(config):
        eps = mean + z * std
        flagged = set()
        for i in np.flatnonzero(e >= eps):
            flagged.update(range(max(0, i - config.error_buffer), min(e.size, i + config.error_buffer + 1)))
        kept = e[e < eps]  # the paper's mu({e_s | e_s < epsilon}); the buffer only counts
        if not flagged or kept.size == 0:
            continue
        seqs = sum(1 for i in flagged if i - 1 not in flagged)
        d_mean, d_std = mean - kept.mean(), std - kept.std()
        if d_mean <= 0 or d_std <= 0 or seqs > config.max_sequences:
            continue
        if len(flagged) >= config.max_anomalous_fraction * e.size:
            continue
        score = (d_mean / mean + d_std / std) / (seqs**2 + len(flagged))
        if score >= best_score:
            best, best_score = eps, score
    return best


@settings(max_examples=60, deadline=None)
@given(
    e=arrays(np.float64, st.integers(5, 80), elements=st.floats(0, 10, allow_nan=False)),
    buffer=st.integers(0, 4),
)
def test_find_epsilon_matches_naive_search(e: np.ndarray, buffer: int) -> None:
    config = ThresholdSettings(error_buffer=buffer)
    got, expected = find_epsilon(e, config), _naive_epsilon(e, config)
    assert (got is None) == (expected is None)
    if got is not None:
        assert got == pytest.approx(expected, rel=1e-9)


def test_error_scale_ok_hand_checked() -> None:
    config = ThresholdSettings()
    values = np.linspace(-1, 1, 100)
    assert error_scale_ok(np.full(100, 0.2) + np.linspace(0, 0.01, 100), values, config)
    # errors below 5 % of the values' spread and range
    assert not error_scale_ok(np.linspace(0.0, 0.06, 100), np.linspace(-10, 10, 100), config)
    # large next to the values but not above min_error_scale
    assert not error_scale_ok(np.linspace(0.0, 0.04, 100), np.zeros(100), config)


def test_prune_sequences_hand_checked() -> None:
    # sorted [10, 9.5, 5] + nominal 4.9: drops .05, .47, .02 -> keep the two above the big drop
    assert prune_sequences(np.array([5.0, 10.0, 9.5]), 4.9, 0.13).tolist() == [False, True, True]
    # no drop >= p anywhere -> everything is nominal
    assert prune_sequences(np.array([10.0, 9.9]), 9.8, 0.13).tolist() == [False, False]
    # a large drop between the sequences does not save the tail below it
    assert prune_sequences(np.array([10.0, 5.0]), 4.9, 0.13).tolist() == [True, False]
    # no nominal value: the smallest maximum is compared with 0
    assert prune_sequences(np.array([10.0]), None, 0.13).tolist() == [True]
    assert prune_sequences(np.zeros(0), 1.0, 0.13).size == 0
    # A maximum at or below the nominal one (or below 0) is nominal and cannot rescue others.
    assert prune_sequences(np.array([1.6]), 1.8, 0.13).tolist() == [False]
    assert prune_sequences(np.array([1.6, -0.5]), 1.8, 0.13).tolist() == [False, False]
    assert prune_sequences(np.array([10.0, -0.5]), None, 0.13).tolist() == [True, False]
    assert prune_sequences(np.array([0.0]), None, 0.13).tolist() == [False]


def test_evaluate_window_flags_only_its_new_region() -> None:
    e = np.full(50, 0.1, dtype=np.float32)
    e[20] = 1.0
    values = np.linspace(-1, 1, 50).astype(np.float32)
    config = ThresholdSettings(error_buffer=3, warmup=0)
    whole = evaluate_window(e, values, np.zeros(50, bool), 0, config)
    assert np.flatnonzero(whole.flagged).tolist() == list(range(17, 24))
    assert whole.scores[20] == pytest.approx((1.0 - whole.epsilon) / (e.mean() + e.std()), rel=1e-5)
    late = evaluate_window(e, values, np.zeros(50, bool), 22, config.model_copy(update={"prune_scope": "window"}))
    assert np.flatnonzero(late.flagged).tolist() == [22, 23]
    assert np.all(np.isneginf(late.scores[~late.flagged]))


def test_new_region_pruning_compares_the_cut_sequence_with_the_rest_of_the_window() -> None:
    e = np.full(50, 0.1, dtype=np.float32)
    e[20] = 1.0
    values = np.linspace(-1, 1, 50).astype(np.float32)
    config = ThresholdSettings(error_buffer=3, warmup=0)
    assert config.prune_scope == "new_region"
    earlier = np.zeros(50, bool)
    earlier[17:22] = True
    # the spike's buffer tail in the new region peaks at 0.1, no higher than the nominal errors
    tail = evaluate_window(e, values, earlier, 22, config)
    assert not tail.flagged.any()
    # the uncut sequence peaks at the spike, so the window rule keeps the tail
    whole = evaluate_window(e, values, earlier, 22, config.model_copy(update={"prune_scope": "window"}))
    assert np.flatnonzero(whole.flagged).tolist() == [22, 23]
    # a spike inside the new region stands out against the old points, which no window flagged
    e_new = e.copy()
    e_new[20], e_new[25] = 0.1, 1.0
    new = evaluate_window(e_new, values, np.zeros(50, bool), 22, config)
    assert np.flatnonzero(new.flagged).tolist() == list(range(22, 29))
    # ... but not against an unflagged old peak of the same height
    e_old = e_new.copy()
    e_old[5] = 1.0
    assert not evaluate_window(e_old, values, np.zeros(50, bool), 22, config).flagged.any()


def test_evaluate_window_inverted_pass_catches_a_drop() -> None:
    rng = np.random.default_rng(0)
    e = (1.0 + 0.01 * rng.standard_normal(60)).astype(np.float32)
    e[30:33] = 0.0
    values = np.linspace(-1, 1, 60).astype(np.float32)
    result = evaluate_window(e, values, np.zeros(60, bool), 0, ThresholdSettings(error_buffer=1, warmup=0))
    assert np.flatnonzero(result.flagged).tolist() == list(range(29, 34))
    assert result.epsilon_inverted > 1.0


def _errors_with(n: int, seed: int, bumps: dict[int, float], width: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    errors = rng.normal(0.0, 0.1, n)
    for at, size in bumps.items():
        errors[at : at + width] += size
    return errors, np.sin(np.arange(n) / 50.0)


def test_planted_anomalies_are_found_within_the_buffer() -> None:
    config = ThresholdSettings()
    errors, values = _errors_with(7000, seed=1, bumps={2500: 2.0, 5200: -1.5})
    found = find_anomalies(errors, values, config)
    assert len(found) == 2
    for seq, at in zip(found, (2500, 5200), strict=True):
        assert at - config.error_buffer <= seq.start <= at + 40
        assert seq.end <= at + 40 + config.error_buffer + 105  # buffer + EWMA decay
        assert seq.score > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stationary_noise_gives_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    result = detect(rng.normal(0, 0.5, 5000), rng.normal(0, 1, 5000), ThresholdSettings())
    assert result.sequences == ()


def test_a_drop_in_the_errors_is_caught() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    errors = rng.choice([-1.0, 1.0], n) + rng.normal(0, 0.1, n)
    errors[4000:4300] = rng.normal(0, 0.01, 300)
    found = find_anomalies(errors, np.sin(np.arange(n) / 50.0), ThresholdSettings())
    assert len(found) == 1 and found[0].start <= 4100 and found[0].end >= 4300


def test_detect_outputs_have_the_series_length() -> None:
    errors, values = _errors_with(3000, seed=4, bumps={2500: 2.0})
    result = detect(errors, values, ThresholdSettings())
    assert result.smoothed_errors.shape == result.threshold.shape == result.point_scores.shape == (3000,)
    assert result.threshold.dtype == result.point_scores.dtype == np.float32
    seq = result.sequences[0]
    assert result.point_scores[2500:2560].max() > 0 > np.median(result.point_scores)
    assert result.point_scores[seq.start : seq.end + 1].max() > np.median(result.point_scores)


def test_the_first_points_of_a_long_series_are_never_flagged() -> None:
    # Default windows: h = 2,100, ignore_first = 500 (Telemanom's 2 * l_s).
    errors, values = _errors_with(7000, seed=3, bumps={300: 2.0, 4000: 2.0})
    late = find_anomalies(errors, values, ThresholdSettings())
    assert len(late) == 1 and late[0].start <= 4000 <= late[0].end
    every = find_anomalies(errors, values, ThresholdSettings(ignore_first=0))
    assert any(seq.start <= 300 <= seq.end for seq in every) and len(every) == 2
    # A series shorter than one window ignores nothing: its start is all it has.
    short = find_anomalies(errors[:1500], values[:1500], ThresholdSettings())
    assert len(short) == 1 and short[0].start <= 300 <= short[0].end


def test_shorter_than_one_window_uses_one_window() -> None:
    errors, values = _errors_with(300, seed=5, bumps={150: 3.0}, width=10)
    found = find_anomalies(errors, values, ThresholdSettings(warmup=20, error_buffer=20))
    assert len(found) == 1 and found[0].start <= 150 <= found[0].end


@pytest.mark.parametrize(
    ("errors", "values", "match"),
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([], [], "empty"),
        ([1.0, np.nan], [1.0, 2.0], "errors has 1 non-finite"),
        ([1.0, 2.0], [1.0, np.inf], "values has 1 non-finite"),
        ([[1.0]], [[1.0]], "1-D"),
    ],
)
def test_bad_input_raises(errors: list, values: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        detect(errors, values, ThresholdSettings())


@settings(max_examples=40, deadline=None)
@given(
    errors=arrays(np.float64, st.integers(1, 250), elements=st.floats(-5, 5, allow_nan=False)),
    seed=st.integers(0, 2**16),
)
def test_sequences_are_sorted_inclusive_disjoint_and_in_range(errors: np.ndarray, seed: int) -> None:
    values = np.random.default_rng(seed).normal(0, 1, errors.size)
    found = find_anomalies(errors, values, SMALL)
    for seq in found:
        assert isinstance(seq, AnomalySequence)
        assert 0 <= seq.start <= seq.end < errors.size
        assert np.isfinite(seq.score)
    for a, b in itertools.pairwise(found):
        assert a.end + 1 < b.start  # sorted, not overlapping, not even touching
