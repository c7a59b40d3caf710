"""Combining two models' errors: hand-computed values and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pdm_ray.config import ThresholdSettings
from pdm_ray.detection import find_anomalies
from pdm_ray.detection.ensemble import combine_errors, error_scale
from pdm_ray.errors import DataError


def test_error_scale_is_the_mean_absolute_error() -> None:
    assert error_scale([1.0, -3.0]) == 2.0
    with pytest.raises(DataError, match="all zero"):
        error_scale([0.0, 0.0])
    with pytest.raises(DataError, match="empty"):
        error_scale([])


def test_combine_errors_hand_checked() -> None:
    # normalized: [1, 2] and [1, 2] -> mean [1, 2], times the mean scale 5.5
    out = combine_errors([[1.0, -2.0], [10.0, 20.0]], [1.0, 10.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [5.5, 11.0])


def test_a_model_with_larger_errors_does_not_dominate() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    quiet = rng.normal(0, 0.05, n)
    quiet[3000:3040] += 1.0  # only the precise model sees the anomaly clearly
    loud = rng.normal(0, 0.5, n)
    combined = combine_errors([quiet, loud], [error_scale(quiet[:2000]), error_scale(loud[:2000])])
    found = find_anomalies(combined, np.sin(np.arange(n) / 50.0), ThresholdSettings())
    assert len(found) == 1 and found[0].start <= 3040 and found[0].end >= 3000


@pytest.mark.parametrize(
    ("errors", "scales", "match"),
    [
        ([], [], "at least one"),
        ([[1.0]], [1.0, 2.0], "1 error series but 2 scales"),
        ([[1.0], [1.0, 2.0]], [1.0, 1.0], "differ in length"),
        ([[1.0]], [0.0], "positive"),
        ([[np.nan]], [1.0], "errors\\[0\\] has 1 non-finite"),
    ],
)
def test_bad_input(errors: list, scales: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        combine_errors(errors, scales)
