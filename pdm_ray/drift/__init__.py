"""Drift detection: six univariate tests between a reference and a current sample, and a stream monitor."""

from pdm_ray.drift.detectors import (
    ChiSquareDrift,
    DriftTest,
    JensenShannonDrift,
    KSDrift,
    MannWhitneyDrift,
    PSIDrift,
    Score,
    WassersteinDrift,
    check_drift,
    detect_drift,
    make_tests,
    run_tests,
)
from pdm_ray.drift.monitor import DriftMonitor
from pdm_ray.drift.results import DriftReport, DriftTestResult, Severity, combine
from pdm_ray.drift.samples import Reference, SamplePair, pair

__all__ = [
    "ChiSquareDrift",
    "DriftMonitor",
    "DriftReport",
    "DriftTest",
    "DriftTestResult",
    "JensenShannonDrift",
    "KSDrift",
    "MannWhitneyDrift",
    "PSIDrift",
    "Reference",
    "SamplePair",
    "Score",
    "Severity",
    "WassersteinDrift",
    "check_drift",
    "combine",
    "detect_drift",
    "make_tests",
    "pair",
    "run_tests",
]
