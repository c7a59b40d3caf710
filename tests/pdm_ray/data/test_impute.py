"""Imputation: hand-computed fills, the max-gap rule, seasonal periods, the local-level smoother."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdm_ray.config import ImputeSettings
from pdm_ray.data.impute import Gap, estimate_local_level, find_period, impute, smooth_local_level
from pdm_ray.errors import DataError

NAN = np.nan


def test_linear_draws_a_line_and_marks_the_filled_points() -> None:
    res = impute(np.array([0.0, NAN, NAN, 3.0, NAN]), ImputeSettings(method="linear"))
    np.testing.assert_allclose(res.values, [0.0, 1.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(res.imputed, [False, True, True, False, True])
    assert res.values.dtype == np.float32 and res.complete and res.method == "linear"


def test_ffill_carries_the_last_value_and_backfills_a_leading_gap() -> None:
    res = impute(np.array([NAN, 2.0, NAN, NAN, 4.0, NAN]), ImputeSettings(method="ffill"))
    np.testing.assert_allclose(res.values, [2.0, 2.0, 2.0, 2.0, 4.0, 4.0])


@pytest.mark.parametrize("method", ["linear", "ffill", "seasonal", "kalman"])
def test_gaps_longer_than_max_gap_stay_nan_and_are_reported(method: str) -> None:
    x = np.arange(20.0)
    x[2:5] = NAN  # length 3: too long for max_gap=2
    x[10:12] = NAN  # length 2: filled
    res = impute(x, ImputeSettings(method=method, max_gap=2))
    assert res.unfilled == (Gap(column=0, start=2, stop=5),)
    assert not res.complete
    assert np.isnan(res.values[2:5]).all() and not res.imputed[2:5].any()
    assert np.isfinite(res.values[10:12]).all() and res.imputed[10:12].all()
    assert np.isfinite(np.delete(res.values, [2, 3, 4])).all()


def test_flag_columns_are_forward_filled_whatever_the_method() -> None:
    x = np.column_stack([np.array([0.0, NAN, 2.0, 3.0]), np.array([0.0, 1.0, NAN, 0.0])])
    res = impute(x, ImputeSettings(method="linear"))
    np.testing.assert_allclose(res.values, [[0.0, 0.0], [1.0, 1.0], [2.0, 1.0], [3.0, 0.0]])
    np.testing.assert_array_equal(res.imputed, np.isnan(x))


def test_find_period_finds_the_sine_period_and_none_in_noise() -> None:
    t = np.arange(480)
    assert find_period(np.sin(2 * np.pi * t / 24)) == 24
    assert find_period(np.random.default_rng(0).standard_normal(480), min_acf=0.3) is None
    assert find_period(np.ones(50)) is None


def test_seasonal_restores_a_missing_peak_that_linear_cuts_off() -> None:
    t = np.arange(480)
    truth = np.sin(2 * np.pi * t / 24) + 0.01 * t
    x = truth.copy()
    x[100:110] = NAN  # spans a crest
    seasonal = impute(x, ImputeSettings(method="seasonal"))
    linear = impute(x, ImputeSettings(method="linear"))
    assert seasonal.period == 24 and seasonal.method == "seasonal"
    err_seasonal = np.abs(seasonal.values[100:110] - truth[100:110]).max()
    err_linear = np.abs(linear.values[100:110] - truth[100:110]).max()
    assert err_seasonal < 0.1 < err_linear


def test_seasonal_without_a_period_falls_back_to_linear() -> None:
    x = np.random.default_rng(1).standard_normal(200)
    x[50] = NAN
    res = impute(x, ImputeSettings(method="seasonal"))
    assert res.period is None and res.method == "linear"
    assert res.values[50] == pytest.approx((x[49] + x[51]) / 2, rel=1e-5)


def test_local_level_fills_a_symmetric_gap_with_the_midpoint() -> None:
    # minimise (0 - m0)^2 + (2 - m2)^2 + ((m1 - m0)^2 + (m2 - m1)^2) / q: m1 = (m0 + m2) / 2 = 1 by symmetry
    for q in (0.01, 1.0, 100.0):
        assert smooth_local_level(np.array([0.0, NAN, 2.0]), q)[1] == pytest.approx(1.0)


def _rts_smoother(y: np.ndarray, q: float) -> np.ndarray:
    """Reference Kalman filter + RTS smoother of the local-level model (var(eps) = 1), a loop per step."""
    n = y.size
    a, p = 0.0, 1e9  # (nearly) diffuse prior
    filt_a, filt_p, pred_a, pred_p = (np.zeros(n) for _ in range(4))
    for t in range(n):
        pred_a[t], pred_p[t] = a, p
        if np.isfinite(y[t]):
            gain = p / (p + 1.0)
            a, p = a + gain * (y[t] - a), p * (1.0 - gain)
        filt_a[t], filt_p[t] = a, p
        p = p + q
    smooth = filt_a.copy()
    for t in range(n - 2, -1, -1):
        j = filt_p[t] / pred_p[t + 1]
        smooth[t] = filt_a[t] + j * (smooth[t + 1] - pred_a[t + 1])
    return smooth


@pytest.mark.parametrize("q", [0.05, 1.0, 20.0])
def test_banded_solve_matches_the_kalman_rts_smoother(q: float) -> None:
    rng = np.random.default_rng(2)
    y = np.cumsum(rng.normal(0, np.sqrt(q), 300)) + rng.normal(0, 1, 300)
    y[[5, 6, 7, 100, 200, 201, 299]] = NAN
    np.testing.assert_allclose(smooth_local_level(y, q), _rts_smoother(y, q), atol=1e-5)


def test_local_level_ratio_is_estimated_by_whittle_likelihood() -> None:
    rng = np.random.default_rng(3)
    level = np.cumsum(rng.normal(0, 0.5, 40_000))
    y = level + rng.normal(0, 1.0, 40_000)
    y[rng.random(40_000) < 0.05] = NAN
    assert estimate_local_level(y) == pytest.approx(0.25, rel=0.15)


def test_kalman_beats_linear_on_a_noisy_random_walk() -> None:
    rng = np.random.default_rng(4)
    level = np.cumsum(rng.normal(0, 0.1, 3000))
    y = level + rng.normal(0, 1.0, 3000)
    holes = np.zeros(3000, bool)
    holes[np.arange(50, 2950, 97)] = True
    x = np.where(holes, NAN, y)
    kalman = impute(x, ImputeSettings(method="kalman"))
    linear = impute(x, ImputeSettings(method="linear"))
    rmse_k = np.sqrt(np.mean((kalman.values[holes] - level[holes]) ** 2))
    rmse_l = np.sqrt(np.mean((linear.values[holes] - level[holes]) ** 2))
    assert rmse_k < 0.6 * rmse_l
    np.testing.assert_array_equal(kalman.values[~holes], y[~holes].astype(np.float32))


@pytest.mark.parametrize(
    ("series", "match"),
    [
        (np.full(5, NAN), "no observed value"),
        (np.column_stack([np.arange(3.0), np.full(3, NAN)]), r"column\(s\) \[1\]"),
        (np.array([1.0, np.inf, NAN]), "infinite"),
        (np.zeros((2, 2, 2)), "shape"),
        (np.zeros(0), "shape"),
        (np.array(["a"]), "numeric"),
    ],
)
def test_bad_input_raises(series: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        impute(series, ImputeSettings())


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(3, 60), elements=st.floats(-100, 100)),
    holes=st.lists(st.integers(0, 59), max_size=20),
    method=st.sampled_from(["linear", "ffill", "seasonal", "kalman"]),
    max_gap=st.integers(1, 8),
)
def test_observed_values_are_kept_and_only_long_gaps_stay_nan(
    x: np.ndarray, holes: list[int], method: str, max_gap: int
) -> None:
    x = x.copy()
    idx = [h for h in holes if h < x.size]
    x[idx] = NAN
    if np.isnan(x).all():
        return
    res = impute(x, ImputeSettings(method=method, max_gap=max_gap))
    observed = ~np.isnan(x)
    np.testing.assert_array_equal(res.values[observed], x[observed].astype(np.float32))
    in_long_gap = np.zeros(x.size, bool)
    for gap in res.unfilled:
        assert gap.length > max_gap
        in_long_gap[gap.start : gap.stop] = True
    np.testing.assert_array_equal(np.isnan(res.values), in_long_gap)
    np.testing.assert_array_equal(res.imputed, ~observed & ~in_long_gap)
