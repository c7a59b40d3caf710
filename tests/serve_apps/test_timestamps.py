"""Forecast timestamps: k-th forecast at last input + k * median spacing (no off-by-one)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serve_apps.timestamps import TimestampError, future_times, to_epoch_seconds


def test_first_forecast_is_one_interval_after_the_last_input() -> None:
    out = future_times([0.0, 60.0, 120.0, 180.0], horizon=3)
    # Not 0 (the first input), not 180 (the last input), not 300 (one interval late).
    np.testing.assert_array_equal(out.epoch_s, [240.0, 300.0, 360.0])
    assert out.interval_s == 60.0
    assert out.iso == ("1970-01-01T00:04:00.000Z", "1970-01-01T00:05:00.000Z", "1970-01-01T00:06:00.000Z")


def test_iso_inputs_with_zones_are_read_as_utc() -> None:
    stamps = ["2024-03-01T10:00:00Z", "2024-03-01T11:00:30+01:00", "2024-03-01T10:01:00"]
    out = future_times(stamps, horizon=2)
    assert out.interval_s == 30.0
    assert out.iso == ("2024-03-01T10:01:30.000Z", "2024-03-01T10:02:00.000Z")


def test_median_spacing_ignores_one_gap() -> None:
    out = future_times([0, 10, 20, 100], horizon=1)  # spacings 10, 10, 80 -> median 10
    np.testing.assert_array_equal(out.epoch_s, [110.0])


def test_epoch_and_iso_may_be_mixed() -> None:
    np.testing.assert_array_equal(to_epoch_seconds([0, "1970-01-01T00:01:00Z", 120.5]), [0.0, 60.0, 120.5])


def test_iso_times_beyond_pandas_nanoseconds() -> None:
    """Nanoseconds end in 1677 and 2262; other four-digit years within ±1e11 s are times as well,
    also next to a string with nanoseconds."""
    stamps = ["1600-01-01T00:00:00Z", "2024-01-01T00:00:00.123456789Z", "3000-01-01T00:00:00Z"]
    np.testing.assert_allclose(
        to_epoch_seconds(stamps), [-11_676_096_000.0, 1_704_067_200.123456, 32_503_680_000.0], rtol=0, atol=2e-6
    )


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        ([0.0], "at least 2 timestamps"),
        ([0.0, 60.0, 60.0], r"timestamps\[2\] is not after timestamps\[1\]"),
        ([100.0, 50.0], r"timestamps\[1\] is not after timestamps\[0\]"),
        (["2024-01-01", "yesterday"], r"timestamps\[1\] is not an ISO-8601 time"),
        (["2024-13-01", "2024-01-02"], r"timestamps\[0\] is not an ISO-8601 time"),
        # pandas reads these as the clock or as NaT; none is an ISO-8601 time
        (["2024-01-01", "now"], r"timestamps\[1\] is not an ISO-8601 time"),
        (["today", "2030-01-01"], r"timestamps\[0\] is not an ISO-8601 time"),
        (["NaT", "NaT"], r"timestamps\[0\] is not an ISO-8601 time"),
        ([0.0, "nan"], r"timestamps\[1\] is not an ISO-8601 time"),
        ([0.0, 9.9e10], "within"),
        ([0.0, "9999-01-01T00:00:00Z"], r"timestamps\[1\] does not lie within"),  # the bound of epoch numbers
    ],
)
def test_bad_timestamps_name_the_problem(stamps: list[float | str], message: str) -> None:
    with pytest.raises(TimestampError, match=message):
        future_times(stamps, horizon=2)


@given(
    start=st.floats(-1e9, 1e9),
    steps=st.lists(st.floats(0.001, 1e5), min_size=1, max_size=50),
    horizon=st.integers(1, 20),
)
def test_future_times_step_by_the_median_from_the_last_input(start: float, steps: list[float], horizon: int) -> None:
    t = start + np.concatenate([[0.0], np.cumsum(steps)])
    if (np.diff(t) <= 0).any():  # float rounding can merge tiny steps on a large start
        return
    out = future_times(t.tolist(), horizon)
    dt = float(np.median(np.diff(t)))
    np.testing.assert_allclose(
        out.epoch_s, t[-1] + dt * np.arange(1, horizon + 1), rtol=0, atol=1e-6 * max(1.0, abs(t[-1]))
    )
    assert out.epoch_s[0] > t[-1]
    parsed = [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in out.iso]
    np.testing.assert_allclose(parsed, out.epoch_s, atol=5e-4)
