"""Windows: hand-checked values, shapes as properties, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.data.windows import input_windows, make_windows
from pdm_ray.errors import DataError, InsufficientDataError


def _series(t: int, f: int) -> np.ndarray:
    # Value at (time i, feature j) = 10 * i + j, so every window is recognisable.
    return (10 * np.arange(t)[:, None] + np.arange(f)[None, :]).astype(np.float64)


def test_make_windows_hand_checked() -> None:
    x, y = make_windows(_series(6, 2), l_s=2, n_predictions=2)
    assert x.shape == (3, 2, 2) and y.shape == (3, 2)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x[0], [[0, 1], [10, 11]])
    np.testing.assert_array_equal(x[2], [[20, 21], [30, 31]])
    np.testing.assert_array_equal(y, [[20, 30], [30, 40], [40, 50]])


def test_make_windows_exact_length_gives_one_window() -> None:
    x, y = make_windows(np.arange(5.0), l_s=3, n_predictions=2)
    assert x.shape == (1, 3, 1)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])


def test_input_windows_hand_checked() -> None:
    x = input_windows(_series(5, 1), l_s=3)
    assert x.shape == (2, 3, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :, 0], [[0, 10, 20], [10, 20, 30]])


def test_windows_are_contiguous_copies() -> None:
    s = _series(8, 2).astype(np.float32)
    x, _ = make_windows(s, l_s=3, n_predictions=1)
    assert x.flags["C_CONTIGUOUS"]
    s[0, 0] = -1.0
    assert x[0, 0, 0] == 0.0


@settings(max_examples=50, deadline=None)
@given(
    t=st.integers(1, 60),
    f=st.integers(1, 4),
    l_s=st.integers(1, 20),
    n_pred=st.integers(1, 10),
)
def test_make_windows_properties(t: int, f: int, l_s: int, n_pred: int) -> None:
    s = _series(t, f)
    if t < l_s + n_pred:
        with pytest.raises(InsufficientDataError, match="too short"):
            make_windows(s, l_s, n_pred)
        return
    x, y = make_windows(s, l_s, n_pred)
    n = t - l_s - n_pred + 1
    assert x.shape == (n, l_s, f) and y.shape == (n, n_pred)
    i = n - 1
    np.testing.assert_array_equal(x[i], s[i : i + l_s])
    np.testing.assert_array_equal(y[i], s[i + l_s : i + l_s + n_pred, 0])
    # Every target's first value is the step right after its window.
    np.testing.assert_array_equal(y[:, 0], s[l_s : l_s + n, 0])


@settings(max_examples=50, deadline=None)
@given(t=st.integers(2, 60), f=st.integers(1, 3), l_s=st.integers(1, 59))
def test_input_windows_align_with_make_windows(t: int, f: int, l_s: int) -> None:
    s = _series(t, f)
    if t <= l_s:
        with pytest.raises(InsufficientDataError):
            input_windows(s, l_s)
        return
    x = input_windows(s, l_s)
    assert x.shape == (t - l_s, l_s, f)
    xw, _ = make_windows(s, l_s, 1)
    np.testing.assert_array_equal(x, xw)


@pytest.mark.parametrize(
    ("series", "l_s", "n_pred", "match"),
    [
        (np.zeros((0, 2)), 2, 1, "non-empty"),
        (np.zeros((5, 0)), 2, 1, "non-empty"),
        (np.zeros((2, 3, 4)), 2, 1, r"shape \[time, features\]"),
        (np.array([1.0, np.nan, 2.0, 3.0]), 1, 1, "non-finite values, first at time index 1"),
        (np.array(["a", "b", "c"]), 1, 1, "numeric"),
        (np.zeros((5, 1)), 0, 1, "l_s must be a positive integer"),
        (np.zeros((5, 1)), 2, -1, "n_predictions must be a positive integer"),
        (np.zeros((5, 1)), 2.0, 1, "l_s must be a positive integer"),
    ],
)
def test_bad_input_names_the_problem(series: np.ndarray, l_s: int, n_pred: int, match: str) -> None:
    with pytest.raises(DataError, match=match):
        make_windows(series, l_s, n_pred)


def test_too_short_names_lengths() -> None:
    with pytest.raises(InsufficientDataError, match=r"length 4 .* l_s=3 .* n_predictions=2"):
        make_windows(np.zeros(4), 3, 2)
    with pytest.raises(InsufficientDataError, match=r"length 3 .* l_s=3"):
        input_windows(np.zeros(3), 3)
