"""Quality checks on hand-made series with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pdm_ray.config import QualitySettings
from pdm_ray.data.quality import CHECKS, QualityReport, QualityStatus, assess_quality, grade, learn_bounds
from pdm_ray.errors import DataError, InsufficientDataError

QS = QualitySettings()


def ramp(n: int = 100) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


def test_clean_ramp_is_excellent_everywhere_but_noise_free() -> None:
    report = assess_quality(ramp(), QS)
    assert [c.name for c in report.checks] == list(CHECKS)
    assert report.status is QualityStatus.EXCELLENT
    assert report.reasons == ()
    assert report["noise"].value == pytest.approx(0.0)  # constant differences


def test_missing_counts_non_finite_steps_in_any_column_and_the_longest_gap() -> None:
    x = np.column_stack([ramp(), np.zeros(100)])
    x[10:13, 0] = np.nan
    x[50:54, 0] = np.nan
    x[70, 1] = np.inf  # a flag column counts too
    check = assess_quality(x, QS)["missing"]
    assert check.value == pytest.approx(8.0)
    assert check.status is QualityStatus.POOR  # 5 < 8 <= 20
    assert "longest gap 4" in check.detail


def test_outliers_use_the_robust_z_score() -> None:
    x = np.tile([-1.0, 1.0], 50)
    x[0], x[1] = -10.0, 10.0  # median 0, MAD 1 -> |z| = 10 / 1.4826 > 3.5; the rest |z| = 0.67
    check = assess_quality(x, QS)["outliers"]
    assert check.value == pytest.approx(2.0)
    assert check.status is QualityStatus.GOOD  # 0.5 < 2 <= 2


def test_outliers_fall_back_to_mean_absolute_deviation_when_mad_is_zero() -> None:
    x = np.zeros(100)
    x[[5, 50, 95]] = 5.0  # MAD 0; mean abs dev 0.15 -> spread 0.188, limit 0.658
    check = assess_quality(x, QS)["outliers"]
    assert check.value == pytest.approx(3.0)
    assert check.status is QualityStatus.FAIR
    assert "MAD is 0" in check.detail


def test_flatline_counts_steps_in_long_runs_only() -> None:
    x = ramp()
    x[10:50] = 10.0  # a run of 40 equal values
    x[61:65] = 60.0  # a run of 5 (60..64): shorter than flatline_min_run=10
    check = assess_quality(x, QS)["flatline"]
    assert check.value == pytest.approx(40.0)
    assert check.status is QualityStatus.GOOD  # 25 < 40 <= 50
    assert "longest run 40" in check.detail


def test_constant_series_is_flagged_poor_but_not_critical_by_default() -> None:
    report = assess_quality(np.full(200, 0.25), QS)
    assert report.constant
    assert report["flatline"].value == pytest.approx(100.0)
    assert report["flatline"].status is QualityStatus.POOR
    assert report["noise"].value == 0.0 and report["outliers"].value == 0.0
    assert report.status is QualityStatus.POOR
    assert any("constant" in r for r in report.reasons)
    strict = QualitySettings(flatline_pct=(25.0, 50.0, 90.0, 99.0))
    assert assess_quality(np.full(200, 0.25), strict).status is QualityStatus.CRITICAL


def test_noise_ratio_is_zero_smooth_one_white_and_sqrt2_alternating() -> None:
    rng = np.random.default_rng(0)
    white = assess_quality(rng.standard_normal(20_000), QS)["noise"]
    assert white.value == pytest.approx(1.0, abs=0.02)
    assert white.status is QualityStatus.POOR
    smooth = assess_quality(np.sin(np.linspace(0, 4 * np.pi, 2000)), QS)["noise"]
    assert smooth.value < 0.01 and smooth.status is QualityStatus.EXCELLENT
    flip = assess_quality(np.tile([1.0, -1.0], 50), QS)["noise"]
    assert flip.value == pytest.approx(np.sqrt(2.0), rel=1e-3)  # diffs +-2 (std ~2) over sqrt(2) * std 1
    assert flip.status is QualityStatus.CRITICAL


def test_range_violations_against_given_and_configured_bounds() -> None:
    x = np.linspace(0.0, 1.0, 100)
    x[[3, 40, 77]] = [-0.5, 1.5, 2.0]
    check = assess_quality(x, QS, bounds=(0.0, 1.0))["range"]
    assert check.value == pytest.approx(3.0)
    assert check.status is QualityStatus.POOR
    assert "1 below 0, 2 above 1" in check.detail
    configured = assess_quality(x, QualitySettings(range_bounds=(-1.0, 1.6)), bounds=(0.0, 1.0))["range"]
    assert configured.value == pytest.approx(1.0)  # settings win over learned bounds
    assert assess_quality(x, QS)["range"].value == 0.0  # no bounds at all


def test_learn_bounds_widens_the_train_range_and_never_collapses() -> None:
    assert learn_bounds(np.array([[0.0, 1.0], [10.0, 0.0]]), 0.1) == pytest.approx((-1.0, 11.0))
    assert learn_bounds(np.full(5, 5.0), 0.1) == pytest.approx((4.5, 5.5))
    with pytest.raises(DataError, match="no finite value"):
        learn_bounds(np.full(5, np.nan), 0.1)


def test_sampling_finds_gaps_duplicates_and_backward_steps() -> None:
    ts = np.arange(100.0)
    ts[60:] += 5.0  # gap at interval 59
    ts[30:] -= 1.0  # duplicate at interval 29
    ts[[80, 81]] = ts[[81, 80]]  # intervals 79 (+2, a gap), 80 (-1), 81 (+2, a gap)
    check = assess_quality(ramp(), QS, timestamps=ts)["sampling"]
    assert check.value == pytest.approx(100.0 * 5 / 99)
    assert check.status is QualityStatus.POOR
    assert check.detail.startswith("3 gaps") and "1 duplicates, 1 backwards" in check.detail


def test_sampling_accepts_datetime64_and_passes_without_timestamps() -> None:
    ts = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "m")
    assert assess_quality(ramp(), QS, timestamps=ts)["sampling"].value == 0.0
    check = assess_quality(ramp(), QS)["sampling"]
    assert check.value == 0.0 and "no timestamps" in check.detail


def test_sampling_refuses_missing_datetimes() -> None:
    ts = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "m")
    ts[50] = np.datetime64("NaT")
    with pytest.raises(DataError, match="1 missing"):
        assess_quality(ramp(), QS, timestamps=ts)


def test_overall_status_is_the_worst_check_and_reasons_name_value_and_limit() -> None:
    x = ramp()
    x[:30] = np.nan  # 30% missing: critical
    report = assess_quality(x, QS)
    assert report.status is QualityStatus.CRITICAL
    assert (
        report.reasons[0]
        == "missing: 30% is critical (above poor limit 20%; 30 of 100 steps non-finite, longest gap 30)"
    )


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "EXCELLENT"), (0.5, "GOOD"), (1.0, "GOOD"), (5.0, "FAIR"), (20.0, "POOR"), (20.01, "CRITICAL")],
)
def test_grade_boundaries_belong_to_the_better_level(value: float, status: str) -> None:
    assert grade(value, (0.0, 1.0, 5.0, 20.0)) is QualityStatus[status]


@given(a=st.floats(0, 200), b=st.floats(0, 200))
def test_grade_is_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert grade(lo, QS.missing_pct) <= grade(hi, QS.missing_pct)


def test_report_round_trips_through_json() -> None:
    x = np.tile([-1.0, 1.0], 50)
    x[5] = np.nan
    report = assess_quality(x, QS, timestamps=np.arange(100.0), bounds=(-0.5, 0.5))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["status"] == report.status.label
    assert QualityReport.from_dict(data) == report
    with pytest.raises(DataError, match="malformed quality report"):
        QualityReport.from_dict({"n_steps": 3, "constant": False, "checks": {}})


@pytest.mark.parametrize(
    ("series", "kwargs", "error", "match"),
    [
        (np.full(10, np.nan), {}, DataError, "all 10 values"),
        (np.array([1.0, np.inf, 2.0]), {}, InsufficientDataError, "at least 3 finite"),
        (np.zeros((2, 2, 2)), {}, DataError, "shape"),
        (np.array(["a", "b", "c"]), {}, DataError, "numeric"),
        (ramp(), {"timestamps": np.arange(99.0)}, DataError, r"shape \[100\]"),
        (ramp(), {"timestamps": np.full(100, np.nan)}, DataError, "non-finite"),
    ],
)
def test_bad_input_raises(series: np.ndarray, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        assess_quality(series, QS, **kwargs)


def test_limits_must_be_ascending() -> None:
    with pytest.raises(ValidationError, match="ascending"):
        QualitySettings(missing_pct=(5.0, 1.0, 10.0, 20.0))
    with pytest.raises(ValidationError, match="low < high"):
        QualitySettings(range_bounds=(1.0, 1.0))
