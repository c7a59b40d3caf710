"""Absolute errors and the EWMA: hand-computed values, pandas equivalence, chunking, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdm_ray.config import ThresholdSettings
from pdm_ray.detection.smoothing import (
    EwmaCarry,
    absolute_errors,
    apply_warmup,
    ewma,
    ewma_span,
    short_series_settings,
    smooth_errors,
)
from pdm_ray.errors import DataError

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


def test_absolute_errors_hand_checked() -> None:
    out = absolute_errors([-1.0, 2.0, -0.5, 0.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0, 2.0, 0.5, 0.0])


def test_ewma_hand_checked() -> None:
    # span 3 -> decay c = 0.5: [1, (2 + .5) / 1.5, (3 + 1 + .25) / 1.75]
    out, carry = ewma([1.0, 2.0, 3.0], span=3)
    np.testing.assert_allclose(out, [1.0, 5.0 / 3.0, 4.25 / 1.75], rtol=1e-7)
    assert out.dtype == np.float32
    assert carry == EwmaCarry(numerator=0.5 * 4.25, count=3)


def test_ewma_span_one_is_identity() -> None:
    out, _ = ewma([3.0, -1.0, 7.0], span=1)
    np.testing.assert_array_equal(out, [3.0, -1.0, 7.0])


def test_default_span_is_telemanoms() -> None:
    assert ewma_span(ThresholdSettings()) == 105


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float32, st.integers(1, 300), elements=finite), span=st.integers(1, 200))
def test_ewma_matches_pandas(x: np.ndarray, span: int) -> None:
    expected = pd.Series(x.astype(np.float64)).ewm(span=span).mean().to_numpy()
    out, _ = ewma(x, span)
    np.testing.assert_allclose(out, expected.astype(np.float32), rtol=2e-6, atol=2e-6 * max(1.0, np.abs(x).max()))


@settings(max_examples=40, deadline=None)
@given(
    x=arrays(np.float32, st.integers(1, 200), elements=finite),
    cuts=st.lists(st.integers(0, 200), max_size=5),
    span=st.integers(1, 50),
)
def test_ewma_in_chunks_is_bit_identical(x: np.ndarray, cuts: list[int], span: int) -> None:
    whole, whole_carry = ewma(x, span)
    parts, carry = [], None
    for chunk in np.split(x, sorted(c % (x.size + 1) for c in cuts)):
        out, carry = ewma(chunk, span, carry)
        parts.append(out)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert carry == whole_carry


def test_warmup_replaces_the_start_by_the_mean_of_twice_as_many() -> None:
    out = apply_warmup(np.array([4.0, 0.0, 1.0, 3.0, 9.0], dtype=np.float32), warmup=2)
    np.testing.assert_array_equal(out, [2.0, 2.0, 1.0, 3.0, 9.0])
    np.testing.assert_array_equal(apply_warmup(np.array([1.0, 5.0], np.float32), 0), [1.0, 5.0])


def test_smooth_errors_uses_absolute_errors_and_warmup() -> None:
    config = ThresholdSettings(batch_size=2, window_size=2, smoothing_perc=0.75, warmup=1)  # span 3
    out = smooth_errors([-1.0, 2.0, -3.0], config)
    first = (1.0 + 5.0 / 3.0) / 2
    np.testing.assert_allclose(out, [first, 5.0 / 3.0, 4.25 / 1.75], rtol=1e-6)


@pytest.mark.parametrize(
    ("bad", "match"),
    [([[1.0, 2.0]], "1-D"), ([1.0, np.nan], "non-finite"), ([1.0, np.inf, 2.0], "index 1"), (["a"], "real numbers")],
)
def test_bad_errors_raise(bad: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        absolute_errors(bad)


def test_ewma_rejects_zero_span() -> None:
    with pytest.raises(DataError, match="span"):
        ewma([1.0], span=0)


def test_a_short_series_flattens_at_most_a_quarter_of_itself() -> None:
    config = ThresholdSettings()  # warmup 250
    assert short_series_settings(config, 170).warmup == 42
    assert short_series_settings(config, 1000) is config  # warm-ups that fit are kept
    flat = smooth_errors(np.r_[np.zeros(100), np.ones(70)], config)
    assert len(np.unique(flat)) == 1  # the default flattens a 170-point series whole
    assert len(np.unique(smooth_errors(np.r_[np.zeros(100), np.ones(70)], short_series_settings(config, 170)))) > 1
