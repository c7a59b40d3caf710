"""What a drift check returns: an ordered ``Severity``, one result per test, a combined report.

The combined verdict is a *majority* rule: with ``k`` tests, drift is declared when more
than ``k / 2`` of them report drift, and the report's severity is the highest level that a
strict majority of the tests reach (the ``floor(k / 2) + 1``-th worst severity). The two
parts agree by construction (a test reports drift exactly when its severity is above
``none``), and one or two outlying tests cannot move the verdict: rank tests' p-values
collapse towards 0 on large samples even for tiny shifts, while bin statistics lose power
on small ones, so no single family decides alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pdm_ray.config import DriftTestName
from pdm_ray.errors import DataError


class Severity(Enum):
    """How far the current sample has drifted, ordered ``none < low < medium < high < critical``."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order, 0 for ``none`` to 4 for ``critical``."""
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {severity: i for i, severity in enumerate(Severity)}
SEVERITY_LEVELS: tuple[Severity, ...] = tuple(Severity)[1:]
"""The levels above ``none``, in the order of the four limits of a test (low..critical)."""


@dataclass(frozen=True)
class DriftTestResult:
    """One test's outcome.

    Attributes:
        test: which test.
        statistic: its statistic (KS ``D``, Mann–Whitney ``U`` of the reference, chi-square,
            PSI, Jensen–Shannon divergence in bits, Wasserstein distance / reference std).
        p_value: the p-value for hypothesis tests (KS, Mann–Whitney, chi-square), else None.
        drift: whether this test alone reports drift (``severity > none``).
        severity: the level reached against the test's configured limits.
    """

    test: DriftTestName
    statistic: float
    p_value: float | None
    drift: bool
    severity: Severity


@dataclass(frozen=True)
class DriftReport:
    """The combined verdict of several tests on one (reference, current) pair.

    Attributes:
        results: one result per configured test, in configuration order.
        drift: a strict majority of the tests report drift.
        severity: the highest severity reached by a strict majority of the tests.
        n_reference: reference sample size.
        n_current: current sample size.
    """

    results: tuple[DriftTestResult, ...]
    drift: bool
    severity: Severity
    n_reference: int
    n_current: int

    def result(self, test: DriftTestName) -> DriftTestResult:
        """The result of ``test``.

        Raises:
            DataError: ``test`` was not part of this report.
        """
        for result in self.results:
            if result.test == test:
                return result
        raise DataError(f"drift test {test!r} is not in this report (tests: {[r.test for r in self.results]})")


def combine(results: tuple[DriftTestResult, ...], n_reference: int, n_current: int) -> DriftReport:
    """Majority verdict over ``results`` (see the module docstring for the rule and why).

    Raises:
        DataError: ``results`` is empty.
    """
    if not results:
        raise DataError("cannot combine an empty set of drift test results")
    majority = len(results) // 2 + 1
    ranked = sorted((r.severity for r in results), reverse=True)
    severity = ranked[majority - 1]
    return DriftReport(
        results=results,
        drift=severity > Severity.NONE,
        severity=severity,
        n_reference=n_reference,
        n_current=n_current,
    )
