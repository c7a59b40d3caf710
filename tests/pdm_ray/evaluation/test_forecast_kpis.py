"""Forecast KPIs on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pdm_ray.errors import DataError
from pdm_ray.evaluation import forecast_kpis


def test_kpis_hand_checked() -> None:
    k = forecast_kpis([1.0, 2.0, 4.0], [2.0, 2.0, 2.0])
    # residuals 1, 0, -2
    assert k.mae == pytest.approx(1.0)
    assert k.rmse == pytest.approx(math.sqrt(5 / 3))
    assert k.mape == pytest.approx((1.0 + 0.0 + 0.5) / 3 * 100)
    assert k.r2 == pytest.approx(1 - 5 / (16 / 9 + 1 / 9 + 25 / 9))  # mean 7/3
    assert (k.n, k.n_mape) == (3, 3)


def test_mape_skips_near_zero_targets() -> None:
    k = forecast_kpis([0.0, 2.0], [1.0, 3.0])
    assert k.n_mape == 1 and k.mape == pytest.approx(50.0)
    assert math.isnan(forecast_kpis([0.0, 0.0], [1.0, 1.0]).mape)


def test_r2_of_constant_targets() -> None:
    assert forecast_kpis([3.0, 3.0], [3.0, 3.0]).r2 == 1.0
    assert forecast_kpis([3.0, 3.0], [2.0, 3.0]).r2 == 0.0


def test_perfect_forecast_of_a_matrix() -> None:
    y = np.arange(12.0).reshape(3, 4)
    k = forecast_kpis(y, y)
    assert (k.mae, k.rmse, k.r2, k.n) == (0.0, 0.0, 1.0, 12)


@pytest.mark.parametrize(
    ("t", "p", "match"),
    [([1.0, 2.0], [1.0], "shape"), ([], [], "empty"), ([1.0, np.nan], [1.0, 1.0], "finite")],
)
def test_bad_input_raises(t: list, p: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        forecast_kpis(t, p)
