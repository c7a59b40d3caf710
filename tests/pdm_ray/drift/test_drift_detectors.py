"""Drift tests: hand-computed values, agreement with scipy, properties, the majority rule, bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats
from scipy.spatial.distance import jensenshannon

from pdm_ray.config import DriftSettings, PValueLimits, StatisticLimits
from pdm_ray.drift import (
    DriftTestResult,
    JensenShannonDrift,
    KSDrift,
    PSIDrift,
    Reference,
    Score,
    Severity,
    combine,
    detect_drift,
    pair,
)
from pdm_ray.errors import DataError, InsufficientDataError

SMALL = DriftSettings(min_samples=2, n_bins=2, current_size=2)

samples = st.lists(st.integers(-5, 5), min_size=2, max_size=40).map(lambda v: np.asarray(v, dtype=np.float32))


def _pair(reference: np.ndarray, current: np.ndarray, cfg: DriftSettings = SMALL):
    prepared = Reference.from_values(reference, cfg.n_bins, cfg.min_samples)
    return pair(prepared, np.sort(current.astype(np.float32)))


def test_hand_computed_shift_by_two() -> None:
    # Reference 1..4, current 3..6; n_bins=2 puts the one edge at the reference median 2.5,
    # so reference counts are [2, 2] and current counts [0, 4].
    report = detect_drift([1, 2, 3, 4], [3, 4, 5, 6], SMALL)
    ks, mw, chi2, psi, js, w = report.results
    assert ks.statistic == pytest.approx(0.5)
    # U of the reference: 3 ties 3 (0.5), 4 beats 3 (1) and ties 4 (0.5).
    assert mw.statistic == pytest.approx(2.0)
    # 2x2 table [[2, 2], [0, 4]] with expected [[1, 3], [1, 3]].
    assert chi2.statistic == pytest.approx(2 * (1 / 1 + 1 / 3))
    assert chi2.p_value == pytest.approx(stats.chi2.sf(8 / 3, 1))
    eps = 1e-4
    assert psi.statistic == pytest.approx((eps - 0.5) * math.log(eps / 0.5) + 0.5 * math.log(2.0))
    assert psi.p_value is None
    kl_p = 0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75)
    kl_q = math.log2(1.0 / 0.75)
    assert js.statistic == pytest.approx(0.5 * kl_p + 0.5 * kl_q)
    # Every quantile moves by 2; the reference std is sqrt(1.25).
    assert w.statistic == pytest.approx(2.0 / math.sqrt(1.25))
    assert [r.test for r in report.results] == ["ks", "mann_whitney", "chi2", "psi", "js", "wasserstein"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scipy_on_tied_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = np.round(rng.normal(size=700), 1).astype(np.float32)
    current = np.round(rng.normal(0.1, 1.2, size=500), 1).astype(np.float32)
    cfg = DriftSettings()
    report = detect_drift(reference, current, cfg)
    ref64, cur64 = reference.astype(np.float64), current.astype(np.float64)

    ks = stats.ks_2samp(ref64, cur64, method="asymp")
    assert report.result("ks").statistic == pytest.approx(ks.statistic)
    assert report.result("ks").p_value == pytest.approx(ks.pvalue, rel=0.05, abs=1e-6)

    mw = stats.mannwhitneyu(ref64, cur64, method="asymptotic")
    assert report.result("mann_whitney").statistic == pytest.approx(mw.statistic)
    assert report.result("mann_whitney").p_value == pytest.approx(mw.pvalue, rel=1e-9)

    assert report.result("wasserstein").statistic == pytest.approx(
        stats.wasserstein_distance(ref64, cur64) / ref64.std(), rel=1e-9
    )

    prepared = Reference.from_values(reference, cfg.n_bins, cfg.min_samples)
    cur_counts = np.bincount(np.searchsorted(prepared.edges, current, side="right"), minlength=prepared.counts.size)
    table = np.stack([prepared.counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert report.result("chi2").statistic == pytest.approx(chi2.statistic, rel=1e-9)
    assert report.result("chi2").p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    js = jensenshannon(prepared.counts / prepared.counts.sum(), cur_counts / cur_counts.sum(), base=2) ** 2
    assert report.result("js").statistic == pytest.approx(js, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(reference=samples, current=samples)
def test_rank_and_distance_statistics_match_scipy(reference: np.ndarray, current: np.ndarray) -> None:
    report = detect_drift(reference, current, SMALL)
    ref64, cur64 = reference.astype(np.float64), current.astype(np.float64)
    assert report.result("ks").statistic == pytest.approx(stats.ks_2samp(ref64, cur64, method="asymp").statistic)
    assert report.result("mann_whitney").statistic == pytest.approx(stats.mannwhitneyu(ref64, cur64).statistic)
    scale = ref64.std() if ref64.std() > 0 else 1.0
    assert report.result("wasserstein").statistic * scale == pytest.approx(
        stats.wasserstein_distance(ref64, cur64), abs=1e-9
    )
    for result in report.results:
        assert math.isfinite(result.statistic)
        assert result.p_value is None or 0.0 <= result.p_value <= 1.0


@settings(max_examples=60, deadline=None)
@given(values=samples, permutation_seed=st.integers(0, 2**16))
def test_identical_samples_never_drift(values: np.ndarray, permutation_seed: int) -> None:
    shuffled = np.random.default_rng(permutation_seed).permutation(values)
    report = detect_drift(values, shuffled, SMALL)
    assert not report.drift and report.severity is Severity.NONE
    for result in report.results:
        assert result.severity is Severity.NONE and not result.drift
        if result.test != "mann_whitney":
            assert result.statistic == pytest.approx(0.0, abs=1e-12)
        assert result.p_value is None or result.p_value == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(a=samples, b=samples)
def test_ks_and_wasserstein_are_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    ab, ba = detect_drift(a, b, SMALL), detect_drift(b, a, SMALL)
    assert ab.result("ks").statistic == pytest.approx(ba.result("ks").statistic)
    assert ab.result("ks").p_value == pytest.approx(ba.result("ks").p_value)
    # The scale is the reference's std, so compare the distances in data units.
    scale_a = a.std(dtype=np.float64) or 1.0
    scale_b = b.std(dtype=np.float64) or 1.0
    assert ab.result("wasserstein").statistic * scale_a == pytest.approx(
        ba.result("wasserstein").statistic * scale_b, abs=1e-9
    )


@settings(max_examples=60, deadline=None)
@given(a=samples, b=samples)
def test_jensen_shannon_is_symmetric_on_shared_bins(a: np.ndarray, b: np.ndarray) -> None:
    # JS is symmetric in its two distributions; the bins are the reference's, so swap counts.
    samples_ab = _pair(a, b)
    swapped = replace(
        samples_ab, reference_counts=samples_ab.current_counts, current_counts=samples_ab.reference_counts
    )
    js = JensenShannonDrift(SMALL.js)
    assert js.score(samples_ab).statistic == pytest.approx(js.score(swapped).statistic, abs=1e-12)
    assert 0.0 <= js.score(samples_ab).statistic <= 1.0


def test_planted_shift_is_critical_everywhere() -> None:
    rng = np.random.default_rng(7)
    report = detect_drift(rng.normal(size=2000), rng.normal(1.0, 1.0, size=2000), DriftSettings())
    assert report.drift and report.severity is Severity.CRITICAL
    assert all(r.severity is Severity.CRITICAL for r in report.results)


def test_constant_reference_gives_finite_results() -> None:
    cfg = DriftSettings(min_samples=5, current_size=5)
    same = detect_drift(np.full(50, 3.0), np.full(20, 3.0), cfg)
    assert not same.drift
    assert all(math.isfinite(r.statistic) for r in same.results)
    assert same.result("mann_whitney").p_value == 1.0 and same.result("chi2").p_value == 1.0
    shifted = detect_drift(np.full(50, 3.0), np.full(20, 3.5), cfg)
    assert shifted.drift and shifted.severity is Severity.CRITICAL
    # Zero reference std: the Wasserstein distance is reported in data units.
    assert shifted.result("wasserstein").statistic == pytest.approx(0.5)
    assert all(math.isfinite(r.statistic) for r in shifted.results)


def test_p_value_decision_levels() -> None:
    ks = KSDrift(PValueLimits(low=0.1, medium=0.01, high=0.001, critical=0.0001))
    assert ks.decide(Score(0.0, 0.5)) is Severity.NONE
    assert ks.decide(Score(0.0, 0.1)) is Severity.NONE  # strictly below a limit
    assert ks.decide(Score(0.0, 0.05)) is Severity.LOW
    assert ks.decide(Score(0.0, 0.005)) is Severity.MEDIUM
    assert ks.decide(Score(0.0, 0.0005)) is Severity.HIGH
    assert ks.decide(Score(0.0, 0.0)) is Severity.CRITICAL


def test_statistic_decision_levels() -> None:
    psi = PSIDrift(StatisticLimits(low=0.1, medium=0.2, high=0.3, critical=0.5), epsilon=1e-4)
    assert psi.decide(Score(0.05, None)) is Severity.NONE
    assert psi.decide(Score(0.1, None)) is Severity.LOW  # at a limit reaches it
    assert psi.decide(Score(0.25, None)) is Severity.MEDIUM
    assert psi.decide(Score(0.3, None)) is Severity.HIGH
    assert psi.decide(Score(7.0, None)) is Severity.CRITICAL


def test_severity_is_ordered() -> None:
    assert Severity.NONE < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert max(Severity.LOW, Severity.HIGH, Severity.MEDIUM) is Severity.HIGH
    assert Severity("medium") >= Severity.MEDIUM


def _result(severity: Severity) -> DriftTestResult:
    return DriftTestResult("psi", 0.0, None, severity > Severity.NONE, severity)


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        # 6 tests: the 4th worst is the level a strict majority reaches.
        (["critical", "critical", "critical", "none", "none", "none"], "none"),
        (["critical", "critical", "high", "low", "none", "none"], "low"),
        (["critical", "high", "medium", "medium", "low", "none"], "medium"),
        (["critical"] * 6, "critical"),
        # 3 tests: the 2nd worst.
        (["high", "low", "none"], "low"),
        (["high", "none", "none"], "none"),
        # 1 test: itself.
        (["medium"], "medium"),
    ],
)
def test_majority_rule(severities: list[str], expected: str) -> None:
    report = combine(tuple(_result(Severity(s)) for s in severities), 10, 10)
    assert report.severity is Severity(expected)
    drifting = sum(s != "none" for s in severities)
    assert report.drift is (drifting > len(severities) / 2)


def test_combine_rejects_nothing() -> None:
    with pytest.raises(DataError, match="empty"):
        combine((), 1, 1)


def test_configured_subset_and_order() -> None:
    cfg = DriftSettings(tests=("wasserstein", "ks"), min_samples=2, current_size=2)
    report = detect_drift([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], cfg)
    assert [r.test for r in report.results] == ["wasserstein", "ks"]
    with pytest.raises(DataError, match="'psi' is not in this report"):
        report.result("psi")


@pytest.mark.parametrize(
    ("reference", "current", "error", "match"),
    [
        ([], [1.0, 2.0], InsufficientDataError, "reference has 0 values"),
        ([1.0, 2.0, 3.0], [1.0], InsufficientDataError, "current sample has 1 values; .* at least 2"),
        ([1.0, float("nan"), 3.0], [1.0, 2.0], DataError, "reference has a non-finite value at index 1"),
        ([1.0, 2.0, 3.0], [1.0, float("inf")], DataError, "current sample has a non-finite value at index 1"),
        ([1.0, 2.0, 1e39], [1.0, 2.0], DataError, "index 2"),  # overflows float32
        ([[1.0, 2.0]], [1.0, 2.0], DataError, r"1-D sample, got shape \(1, 2\)"),
        (["a", "b"], [1.0, 2.0], DataError, "numeric"),
    ],
)
def test_bad_input_is_named(reference: list, current: list, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        detect_drift(reference, current, SMALL)


def test_limits_and_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="decrease"):
        PValueLimits(low=0.01, medium=0.05)
    with pytest.raises(ValidationError, match="increase"):
        StatisticLimits(low=0.3, medium=0.2, high=0.4, critical=0.5)
    with pytest.raises(ValidationError, match="repeats"):
        DriftSettings(tests=("ks", "ks"))
    with pytest.raises(ValidationError, match="current_size"):
        DriftSettings(min_samples=100, current_size=50)
