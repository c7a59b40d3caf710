"""Data-quality assessment: six vectorized checks graded on five levels.

Checks (on the telemetry value, column 0, unless noted):

- ``missing``: % of time steps with a non-finite value in any column.
- ``outliers``: % of values whose robust z-score ``|x - median| / (1.4826 MAD)`` exceeds
  ``outlier_z`` (Iglewicz & Hoaglin 1993; when MAD is 0 the mean absolute deviation
  times 1.2533 stands in, as they suggest).
- ``flatline``: % of steps inside runs of at least ``flatline_min_run`` equal consecutive
  values (a stuck sensor); the longest run is in the detail.
- ``noise``: ``std(diff(x)) / (sqrt(2) std(x))`` = ``sqrt(1 - lag-1 autocorrelation)``: 0 for a
  smooth signal, 1 for white noise, up to sqrt(2) for a signal that flips every step.
- ``range``: % of values outside ``[low, high]`` (configured, or learned from train).
- ``sampling``: % of timestamp intervals that are gaps (above ``gap_factor`` times the
  median interval), duplicates or backwards; 0 when there are no timestamps.

Each value is graded against four ascending limits (excellent, good, fair, poor); above
the last is critical. The report's status is the worst check's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pdm_ray.config import QualitySettings
from pdm_ray.errors import DataError, InsufficientDataError

logger = logging.getLogger(__name__)

CheckName = Literal["missing", "outliers", "flatline", "noise", "range", "sampling"]
CHECKS: tuple[CheckName, ...] = ("missing", "outliers", "flatline", "noise", "range", "sampling")
MAD_TO_STD = 1.4826
MEAN_AD_TO_STD = 1.2533


class QualityStatus(IntEnum):
    """Five levels, ordered by severity (``max`` of statuses is the worst)."""

    EXCELLENT = 0
    GOOD = 1
    FAIR = 2
    POOR = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def grade(value: float, limits: tuple[float, ...]) -> QualityStatus:
    """The level of ``value``: excellent when ``<= limits[0]``, ..., critical above ``limits[3]``."""
    return QualityStatus(int(np.searchsorted(np.asarray(limits), value, side="left")))


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome.

    Attributes:
        name: which check.
        value: the measured value (a percentage, or the noise ratio).
        status: ``value`` graded against ``limits``.
        limits: upper limits of excellent, good, fair, poor.
        detail: what was counted, in words (longest run, bounds used, ...).
    """

    name: CheckName
    value: float
    status: QualityStatus
    limits: tuple[float, float, float, float]
    detail: str

    @property
    def unit(self) -> str:
        return "" if self.name == "noise" else "%"

    def reason(self) -> str:
        """Human text naming the check, its value and the limit it crossed."""
        level = int(self.status)
        crossed = self.limits[level - 1] if level else self.limits[0]
        bound = f"above {QualityStatus(level - 1).label} limit {crossed:g}{self.unit}" if level else "within limits"
        return f"{self.name}: {self.value:.3g}{self.unit} is {self.status.label} ({bound}; {self.detail})"


@dataclass(frozen=True)
class QualityReport:
    """The six checks of one series.

    Attributes:
        n_steps: length of the series.
        checks: one ``CheckResult`` per check, in ``CHECKS`` order.
        constant: the finite values of column 0 are all equal.
    """

    n_steps: int
    checks: tuple[CheckResult, ...]
    constant: bool

    @property
    def status(self) -> QualityStatus:
        """The worst check's status."""
        return max(c.status for c in self.checks)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the status is what it is: every check graded fair or worse, and a constant series."""
        out = [c.reason() for c in self.checks if c.status >= QualityStatus.FAIR]
        if self.constant and not any(r.startswith("flatline") for r in out):
            out.append(self["flatline"].reason())
        return tuple(out)

    def __getitem__(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no quality check named {name!r}; checks are {CHECKS}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``QualityReport.from_dict(report.to_dict()) == report``."""
        return {
            "n_steps": self.n_steps,
            "status": self.status.label,
            "constant": self.constant,
            "reasons": list(self.reasons),
            "checks": {
                c.name: {"value": c.value, "status": c.status.label, "limits": list(c.limits), "detail": c.detail}
                for c in self.checks
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityReport:
        """Rebuild a report written by ``to_dict``.

        Raises:
            DataError: a missing check or key, or an unknown status.
        """
        try:
            raw = data["checks"]
            checks = tuple(
                CheckResult(
                    name=name,
                    value=float(raw[name]["value"]),
                    status=QualityStatus[str(raw[name]["status"]).upper()],
                    limits=tuple(float(v) for v in raw[name]["limits"]),  # type: ignore[arg-type]
                    detail=str(raw[name]["detail"]),
                )
                for name in CHECKS
            )
            return cls(n_steps=int(data["n_steps"]), checks=checks, constant=bool(data["constant"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed quality report: missing or invalid {exc}") from exc


def learn_bounds(train: npt.ArrayLike, margin: float) -> tuple[float, float]:
    """Range bounds from train column 0, widened by ``margin`` times its range on each side.

    A constant train widens by ``margin * max(|value|, 1)`` instead, so the bounds never collapse.

    Raises:
        DataError: train has no finite value.
    """
    arr = np.asarray(train, dtype=np.float64)
    values = arr[:, 0] if arr.ndim == 2 else arr.ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise DataError("cannot learn range bounds: train has no finite value")
    lo, hi = float(values.min()), float(values.max())
    pad = margin * (hi - lo) if hi > lo else margin * max(abs(lo), 1.0)
    return lo - pad, hi + pad


def _runs(values: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Starts and lengths of the runs of equal consecutive values (lengths sum to ``len(values)``)."""
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    return starts, np.diff(np.append(starts, values.size))


def _missing(arr: npt.NDArray[np.float64], limits: Any) -> CheckResult:
    bad = ~np.isfinite(arr).all(axis=1)
    starts, lengths = _runs(bad)
    longest = int(lengths[bad[starts]].max(initial=0))
    value = 100.0 * float(bad.mean())
    detail = f"{int(bad.sum())} of {bad.size} steps non-finite, longest gap {longest}"
    return CheckResult("missing", value, grade(value, limits), tuple(limits), detail)


def _outliers(x: npt.NDArray[np.float64], z_limit: float, limits: Any) -> CheckResult:
    med = np.median(x)
    dev = np.abs(x - med)
    spread = MAD_TO_STD * np.median(dev)
    how = "MAD"
    if spread == 0:
        spread = MEAN_AD_TO_STD * dev.mean()
        how = "mean absolute deviation (MAD is 0)"
    n_out = int((dev > z_limit * spread).sum()) if spread > 0 else 0
    value = 100.0 * n_out / x.size
    detail = f"{n_out} values beyond robust z {z_limit:g} (median {med:.4g}, spread from {how})"
    return CheckResult("outliers", value, grade(value, limits), tuple(limits), detail)


def _flatline(x: npt.NDArray[np.float64], min_run: int, limits: Any) -> CheckResult:
    _, runs = _runs(x)
    stuck = int(runs[runs >= min_run].sum())
    value = 100.0 * stuck / x.size
    if runs.size == 1:
        detail = f"the series is constant ({x[0]:.6g} at all {x.size} steps)"
    else:
        detail = f"{stuck} steps in runs of >= {min_run} equal values, longest run {int(runs.max())}"
    return CheckResult("flatline", value, grade(value, limits), tuple(limits), detail)


def _noise(x: npt.NDArray[np.float64], limits: Any) -> CheckResult:
    std = x.std()
    value = float(np.diff(x).std() / (np.sqrt(2.0) * std)) if std > 0 else 0.0
    detail = "std of first differences / (sqrt(2) * std); 1 = white noise" if std > 0 else "constant: no noise"
    return CheckResult("noise", value, grade(value, limits), tuple(limits), detail)


def _range(x: npt.NDArray[np.float64], bounds: tuple[float, float] | None, limits: Any) -> CheckResult:
    if bounds is None:
        return CheckResult("range", 0.0, grade(0.0, limits), tuple(limits), "no bounds configured or learned")
    lo, hi = bounds
    below, above = int((x < lo).sum()), int((x > hi).sum())
    value = 100.0 * (below + above) / x.size
    detail = f"{below} below {lo:.4g}, {above} above {hi:.4g}"
    return CheckResult("range", value, grade(value, limits), tuple(limits), detail)


def _sampling(timestamps: npt.ArrayLike | None, n: int, gap_factor: float, limits: Any) -> CheckResult:
    if timestamps is None:
        return CheckResult("sampling", 0.0, grade(0.0, limits), tuple(limits), "no timestamps: regular by index")
    ts = np.asarray(timestamps)
    if np.issubdtype(ts.dtype, np.datetime64):
        if np.isnat(ts).any():  # NaT casts to a finite int64 below
            raise DataError(f"timestamps have {int(np.isnat(ts).sum())} missing (NaT) values")
        ts = ts.astype("datetime64[ns]").astype(np.int64)
    if ts.ndim != 1 or ts.size != n:
        raise DataError(f"timestamps must have shape [{n}] like the series, got {ts.shape}")
    if not np.issubdtype(ts.dtype, np.number):
        raise DataError(f"timestamps must be numeric or datetime64, got dtype {ts.dtype}")
    ts = ts.astype(np.float64)
    if not np.isfinite(ts).all():
        raise DataError(f"timestamps have {int((~np.isfinite(ts)).sum())} non-finite values")
    d = np.diff(ts)
    positive = d[d > 0]
    step = float(np.median(positive)) if positive.size else 0.0
    backwards, duplicates = int((d < 0).sum()), int((d == 0).sum())
    gaps = int((d > gap_factor * step).sum()) if step > 0 else 0
    value = 100.0 * (backwards + duplicates + gaps) / max(d.size, 1)
    detail = (
        f"{gaps} gaps (> {gap_factor:g} x median interval {step:.4g}), {duplicates} duplicates, {backwards} backwards"
    )
    return CheckResult("sampling", value, grade(value, limits), tuple(limits), detail)


def assess_quality(
    series: npt.ArrayLike,
    settings: QualitySettings,
    *,
    timestamps: npt.ArrayLike | None = None,
    bounds: tuple[float, float] | None = None,
) -> QualityReport:
    """Run the six checks on one series.

    Args:
        series: ``[T, F]`` or ``[T]``; column 0 is the value, the rest command flags.
            Non-finite entries are counted as missing and left out of the other checks.
        settings: limits of each check.
        timestamps: ``[T]`` numeric or datetime64, or None (the sampling check passes).
        bounds: ``(low, high)`` for the range check; ``settings.range_bounds`` wins when set.
            Pass ``learn_bounds(train, settings.range_margin)`` when checking test data.

    Raises:
        DataError: not a non-empty ``[T, F]`` array, every value missing, or bad timestamps.
        InsufficientDataError: fewer than 3 finite values in column 0.
    """
    arr = np.asarray(series)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"series must be a non-empty [time, features] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"series must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    column = arr[:, 0]
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        raise DataError(f"all {column.size} values of the series are missing or non-finite")
    if finite.size < 3:
        raise InsufficientDataError(f"quality needs at least 3 finite values, got {finite.size}")
    use_bounds = settings.range_bounds if settings.range_bounds is not None else bounds
    checks = (
        _missing(arr, settings.missing_pct),
        _outliers(finite, settings.outlier_z, settings.outlier_pct),
        _flatline(finite, settings.flatline_min_run, settings.flatline_pct),
        _noise(finite, settings.noise_ratio),
        _range(finite, use_bounds, settings.range_pct),
        _sampling(timestamps, arr.shape[0], settings.gap_factor, settings.sampling_pct),
    )
    return QualityReport(n_steps=int(arr.shape[0]), checks=checks, constant=bool(finite.min() == finite.max()))
