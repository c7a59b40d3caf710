"""Six univariate drift tests with a common base, ``score`` kept apart from the decision.

In the style of alibi-detect (one class per test), but each test scores a prepared
``SamplePair`` so one sort and one merge serve all six, and results are frozen dataclasses.

* ``KSDrift``: two-sample Kolmogorov–Smirnov ``D = max |F_ref - F_cur|``; p-value from the
  limiting Kolmogorov distribution with Stephens' (1970) small-sample correction,
  ``Q_KS((sqrt(e) + 0.12 + 0.11 / sqrt(e)) D)`` with ``e = n m / (n + m)``.
* ``MannWhitneyDrift``: ``U`` of the reference from mid-ranks of the union; two-sided p-value
  from the tie-corrected normal approximation with continuity correction (as
  ``scipy.stats.mannwhitneyu(method="asymptotic")``).
* ``ChiSquareDrift``: chi-square test of homogeneity of the ``2 x b`` table of counts on the
  reference's quantile bins (bins empty in both samples are dropped).
* ``PSIDrift``: population stability index ``sum (q - p) ln(q / p)`` on the same bins, with
  proportions floored at ``psi_epsilon`` so an empty bin gives a large, finite value.
* ``JensenShannonDrift``: Jensen–Shannon divergence in bits (base 2, in ``[0, 1]``) on the
  same bins.
* ``WassersteinDrift``: the 1-Wasserstein distance between the empirical distributions
  (the quantity ``scipy.stats.wasserstein_distance`` computes, from the shared merge)
  divided by the reference's standard deviation, so limits are in reference stds.

Constant reference: KS, Mann–Whitney and the bin tests are well defined (two bins, see
``samples``); when every value of both samples is the same, Mann–Whitney's variance is 0 and
its p-value is 1 (no evidence), and a chi-square table with one non-empty bin has statistic
0 and p-value 1. The Wasserstein distance is divided by 1 instead of a zero std, i.e. it is
reported in data units.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

from pdm_ray.config import DriftSettings, DriftTestName, PValueLimits, StatisticLimits
from pdm_ray.drift.results import SEVERITY_LEVELS, DriftReport, DriftTestResult, Severity, combine
from pdm_ray.drift.samples import Reference, SamplePair, as_sample, pair


@dataclass(frozen=True)
class Score:
    """A test's raw output before any decision: the statistic and, for hypothesis tests, a p-value."""

    statistic: float
    p_value: float | None


class DriftTest(ABC):
    """A drift test: ``score`` a sample pair, then ``decide`` a severity from configured limits."""

    name: ClassVar[DriftTestName]

    @abstractmethod
    def score(self, samples: SamplePair) -> Score:
        """The raw statistic (and p-value) of this test on ``samples``."""

    @abstractmethod
    def decide(self, score: Score) -> Severity:
        """The severity ``score`` reaches against this test's limits."""

    def run(self, samples: SamplePair) -> DriftTestResult:
        """Score, decide and package the result."""
        score = self.score(samples)
        severity = self.decide(score)
        return DriftTestResult(
            test=self.name,
            statistic=score.statistic,
            p_value=score.p_value,
            drift=severity > Severity.NONE,
            severity=severity,
        )


class _PValueTest(DriftTest):
    """A hypothesis test: a p-value below a limit reaches that limit's severity."""

    def __init__(self, limits: PValueLimits) -> None:
        self.limits = limits

    def decide(self, score: Score) -> Severity:
        bounds = (self.limits.low, self.limits.medium, self.limits.high, self.limits.critical)
        p = 1.0 if score.p_value is None else score.p_value
        reached = sum(p < bound for bound in bounds)
        return SEVERITY_LEVELS[reached - 1] if reached else Severity.NONE


class _StatisticTest(DriftTest):
    """A distance-like test: a statistic at or above a limit reaches that limit's severity."""

    def __init__(self, limits: StatisticLimits) -> None:
        self.limits = limits

    def decide(self, score: Score) -> Severity:
        bounds = (self.limits.low, self.limits.medium, self.limits.high, self.limits.critical)
        reached = sum(score.statistic >= bound for bound in bounds)
        return SEVERITY_LEVELS[reached - 1] if reached else Severity.NONE


class KSDrift(_PValueTest):
    """Two-sample Kolmogorov–Smirnov test (asymptotic p-value, Stephens' correction)."""

    name = "ks"

    def score(self, samples: SamplePair) -> Score:
        d = float(np.max(np.abs(samples.cdf_reference - samples.cdf_current)))
        root_e = math.sqrt(samples.n_reference * samples.n_current / (samples.n_reference + samples.n_current))
        p = float(special.kolmogorov((root_e + 0.12 + 0.11 / root_e) * d))
        return Score(d, min(max(p, 0.0), 1.0))


class MannWhitneyDrift(_PValueTest):
    """Mann–Whitney U test (tie-corrected normal approximation, continuity correction)."""

    name = "mann_whitney"

    def score(self, samples: SamplePair) -> Score:
        n1, n2 = samples.n_reference, samples.n_current
        total = n1 + n2
        u1 = samples.reference_ranks_sum - n1 * (n1 + 1) / 2.0
        u = max(u1, n1 * n2 - u1)
        t = samples.tie_sizes.astype(np.float64)
        tie_term = float(np.sum(t**3 - t)) / (total * (total - 1))
        variance = n1 * n2 / 12.0 * ((total + 1) - tie_term)
        if variance <= 0.0:
            return Score(u1, 1.0)
        z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
        p = 2.0 * float(special.ndtr(-z))
        return Score(u1, min(max(p, 0.0), 1.0))


def _proportions(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    return counts / counts.sum()


class ChiSquareDrift(_PValueTest):
    """Chi-square test of homogeneity on the reference's quantile bins."""

    name = "chi2"

    def score(self, samples: SamplePair) -> Score:
        table = np.stack([samples.reference_counts, samples.current_counts]).astype(np.float64)
        table = table[:, table.sum(axis=0) > 0]
        dof = table.shape[1] - 1
        if dof == 0:
            return Score(0.0, 1.0)
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        return Score(chi2, float(special.chdtrc(dof, chi2)))


class PSIDrift(_StatisticTest):
    """Population stability index on the reference's quantile bins."""

    name = "psi"

    def __init__(self, limits: StatisticLimits, epsilon: float) -> None:
        super().__init__(limits)
        self.epsilon = epsilon

    def score(self, samples: SamplePair) -> Score:
        p = np.maximum(_proportions(samples.reference_counts), self.epsilon)
        q = np.maximum(_proportions(samples.current_counts), self.epsilon)
        return Score(float(np.sum((q - p) * np.log(q / p))), None)


def _kl_bits(p: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> float:
    """``KL(p || m)`` in bits, with ``0 log 0 = 0`` (``m > 0`` wherever ``p > 0``)."""
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log2(p[nonzero] / m[nonzero])))


class JensenShannonDrift(_StatisticTest):
    """Jensen–Shannon divergence (bits) on the reference's quantile bins."""

    name = "js"

    def score(self, samples: SamplePair) -> Score:
        p = _proportions(samples.reference_counts)
        q = _proportions(samples.current_counts)
        mid = (p + q) / 2.0
        divergence = 0.5 * _kl_bits(p, mid) + 0.5 * _kl_bits(q, mid)
        return Score(min(max(divergence, 0.0), 1.0), None)


class WassersteinDrift(_StatisticTest):
    """1-Wasserstein distance in units of the reference's standard deviation."""

    name = "wasserstein"

    def score(self, samples: SamplePair) -> Score:
        gaps = np.diff(samples.values)
        cdf_gap = np.abs(samples.cdf_reference[:-1] - samples.cdf_current[:-1])
        distance = float(np.sum(cdf_gap * gaps))  # not np.dot: a BLAS call may spin up threads
        scale = samples.reference_std if samples.reference_std > 0.0 else 1.0
        return Score(distance / scale, None)


def make_tests(cfg: DriftSettings) -> tuple[DriftTest, ...]:
    """The tests named in ``cfg.tests``, in that order, each with its configured limits."""
    factories = {
        "ks": lambda: KSDrift(cfg.ks),
        "mann_whitney": lambda: MannWhitneyDrift(cfg.mann_whitney),
        "chi2": lambda: ChiSquareDrift(cfg.chi2),
        "psi": lambda: PSIDrift(cfg.psi, cfg.psi_epsilon),
        "js": lambda: JensenShannonDrift(cfg.js),
        "wasserstein": lambda: WassersteinDrift(cfg.wasserstein),
    }
    return tuple(factories[name]() for name in cfg.tests)


def run_tests(tests: tuple[DriftTest, ...], samples: SamplePair) -> DriftReport:
    """Run every test on ``samples`` and combine them by majority (see ``results``)."""
    results = tuple(test.run(samples) for test in tests)
    return combine(results, samples.n_reference, samples.n_current)


def check_drift(reference: Reference, current: npt.ArrayLike, cfg: DriftSettings) -> DriftReport:
    """Check a current sample ``[m]`` against a prepared reference.

    Raises:
        DataError: ``current`` is not a finite 1-D numeric sample.
        InsufficientDataError: it has fewer than ``cfg.min_samples`` values.
    """
    current_sorted = np.sort(as_sample(current, "current sample", cfg.min_samples))
    return run_tests(make_tests(cfg), pair(reference, current_sorted))


def detect_drift(reference: npt.ArrayLike, current: npt.ArrayLike, cfg: DriftSettings) -> DriftReport:
    """Compare a current sample ``[m]`` with a reference sample ``[n]`` using every configured test.

    Raises:
        DataError: either sample is not a finite 1-D numeric sample.
        InsufficientDataError: either has fewer than ``cfg.min_samples`` values.
    """
    prepared = Reference.from_values(reference, cfg.n_bins, cfg.min_samples)
    return check_drift(prepared, current, cfg)
