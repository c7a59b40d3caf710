"""Normalization: hand-computed fits, pass-through flags, constant columns, JSON, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdm_ray.config import NormalizeSettings
from pdm_ray.data.normalize import Normalizer, fit_normalizer
from pdm_ray.errors import DataError

VALUES = np.array([1.0, 2.0, 3.0, 4.0, 10.0])


def series_with_flags() -> np.ndarray:
    flags = np.zeros((5, 3))
    flags[[0, 2, 4], 1] = 1.0
    return np.column_stack([VALUES, flags])


def test_zscore_fits_mean_and_population_std() -> None:
    norm = fit_normalizer(VALUES, NormalizeSettings(method="zscore"))
    # mean 4, deviations -3 -2 -1 0 6 -> variance 50 / 5 = 10
    assert norm.center == pytest.approx((4.0,))
    assert norm.scale == pytest.approx((np.sqrt(10.0),))
    np.testing.assert_allclose(norm.transform(VALUES)[:, 0], (VALUES - 4.0) / np.sqrt(10.0), rtol=1e-6)


def test_minmax_maps_train_to_unit_interval() -> None:
    norm = fit_normalizer(VALUES, NormalizeSettings(method="minmax"))
    out = norm.transform(VALUES)[:, 0]
    np.testing.assert_allclose(out, [0.0, 1 / 9, 2 / 9, 3 / 9, 1.0], rtol=1e-6)


def test_robust_uses_median_and_iqr() -> None:
    norm = fit_normalizer(VALUES, NormalizeSettings(method="robust"))
    # numpy linear quantiles of [1,2,3,4,10]: q25 = 2, median = 3, q75 = 4
    assert norm.center == pytest.approx((3.0,))
    assert norm.scale == pytest.approx((2.0,))


def test_robust_falls_back_to_std_when_iqr_is_zero() -> None:
    x = np.array([0.0] * 8 + [5.0, -5.0])
    norm = fit_normalizer(x, NormalizeSettings(method="robust"))
    assert norm.scale == pytest.approx((np.std(x),))
    assert norm.constant_columns == ()


def test_value_columns_leave_command_flags_unchanged() -> None:
    x = series_with_flags()
    norm = fit_normalizer(x, NormalizeSettings(method="zscore", columns="value"))
    out = norm.transform(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(out[:, 1:], x[:, 1:])
    assert norm.center[1:] == (0.0, 0.0, 0.0) and norm.scale[1:] == (1.0, 1.0, 1.0)


def test_all_columns_fits_flags_and_flags_the_constant_ones() -> None:
    x = series_with_flags()
    norm = fit_normalizer(x, NormalizeSettings(method="minmax", columns="all"))
    out = norm.transform(x)
    assert norm.constant_columns == (1, 3)  # never-active flags
    np.testing.assert_array_equal(out[:, [1, 3]], 0.0)
    np.testing.assert_array_equal(out[:, 2], x[:, 2])  # a 0/1 flag is already min-max scaled


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
def test_constant_series_is_flagged_and_shifted_never_nan(method: str) -> None:
    x = np.full(50, 0.7)
    norm = fit_normalizer(x, NormalizeSettings(method=method))
    assert norm.constant_columns == (0,)
    assert norm.scale == (1.0,)
    out = norm.transform(np.array([0.7, 1.7]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0], atol=1e-6)


def test_json_round_trip_gives_the_same_normalizer() -> None:
    norm = fit_normalizer(series_with_flags(), NormalizeSettings(method="robust", columns="all"))
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert again == norm


def test_value_helpers_scale_predictions_of_any_shape() -> None:
    norm = fit_normalizer(series_with_flags(), NormalizeSettings(method="zscore"))
    y = np.array([[1.0, 2.0], [3.0, 10.0]])
    scaled = norm.transform_value(y)
    assert scaled.shape == (2, 2)
    np.testing.assert_allclose(scaled, (y - 4.0) / np.sqrt(10.0), rtol=1e-6)
    np.testing.assert_allclose(norm.inverse_value(scaled), y, rtol=1e-6)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([1.0, np.nan, 3.0]), "non-finite"),
        (np.array([1.0, np.inf, 3.0]), "non-finite"),
        (np.full(4, np.nan), "non-finite"),
        (np.zeros((0, 2)), "non-empty"),
        (np.zeros((2, 2, 2)), "non-empty"),
    ],
)
def test_fit_rejects_bad_train(bad: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        fit_normalizer(bad, NormalizeSettings())


def test_transform_rejects_wrong_feature_count_and_non_finite() -> None:
    norm = fit_normalizer(series_with_flags(), NormalizeSettings())
    with pytest.raises(DataError, match="expected 4 features"):
        norm.transform(np.zeros((3, 2)))
    with pytest.raises(DataError, match="non-finite"):
        norm.transform(np.full((3, 4), np.inf))
    with pytest.raises(DataError, match="non-finite"):
        norm.transform_value([np.nan])


@pytest.mark.parametrize(
    "data",
    [
        {"format_version": 1, "method": "zscore", "columns": "value", "center": [0.0], "scale": [0.0]},
        {"format_version": 1, "method": "mean", "columns": "value", "center": [0.0], "scale": [1.0]},
        {"format_version": 2, "method": "zscore", "columns": "value", "center": [0.0], "scale": [1.0]},
        {"format_version": 1, "method": "zscore", "columns": "value", "center": [0.0, 1.0], "scale": [1.0]},
        {"format_version": 1, "method": "zscore", "columns": "value", "center": ["x"], "scale": [1.0]},
        {"format_version": 1, "method": "zscore", "columns": "value"},
    ],
)
def test_from_dict_rejects_malformed_data(data: dict) -> None:
    with pytest.raises(DataError):
        Normalizer.from_dict(data)


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float32, st.tuples(st.integers(2, 40), st.integers(1, 4)), elements=finite),
    method=st.sampled_from(["zscore", "minmax", "robust"]),
    columns=st.sampled_from(["value", "all"]),
)
def test_round_trip_is_identity(x: np.ndarray, method: str, columns: str) -> None:
    norm = fit_normalizer(x, NormalizeSettings(method=method, columns=columns))
    out = norm.transform(x)
    assert np.isfinite(out).all()
    back = norm.inverse_transform(out)
    tol = 1e-5 * np.maximum(np.abs(x).max(axis=0), np.asarray(norm.scale)) + 1e-6
    assert (np.abs(back - x) <= 2 * tol).all()
