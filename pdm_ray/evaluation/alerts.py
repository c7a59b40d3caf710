"""Operator alerts: a sensor's KPIs checked against the ``dashboard`` limits, as pure functions.

Four checks, each giving at most one ``Alert``:

* ``forecast``: the rolling one-step forecast RMSE exceeds ``max_rmse_ratio`` x the
  production model's validation RMSE (both in sensor units), once ``min_rmse_points``
  readings were scored: the model no longer fits the data it sees;
* ``anomaly_rate``: more than ``max_events_per_hour`` anomalous sequences ended in the
  last hour of the sensor's own timestamps;
* ``drift``: the drift monitor's severity is at least ``drift_severity``;
* ``quality``: the data-quality level is one of ``quality_levels``.

An alert is ``critical`` when the value is at least twice its limit (for drift and
quality: at the ``critical`` level), else a ``warning``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pdm_ray.config import DashboardSettings
from pdm_ray.drift.results import Severity
from pdm_ray.errors import DataError

HOUR_S = 3600.0


class AlertKind(enum.StrEnum):
    """Which KPI degraded."""

    FORECAST = "forecast"
    ANOMALY_RATE = "anomaly_rate"
    DRIFT = "drift"
    QUALITY = "quality"


class AlertLevel(enum.StrEnum):
    """How bad it is."""

    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class SensorKpis:
    """What the alert checks read about one sensor (None: not known yet).

    Attributes:
        sensor_id: the sensor.
        rolling_rmse: RMSE of the newest scored one-step forecasts, sensor units.
        rolling_points: how many forecasts that RMSE covers.
        validation_rmse: the production model's validation RMSE, sensor units.
        events_last_hour: anomalous sequences that ended in the sensor's last hour.
        drift_severity: the drift monitor's severity name (``none`` .. ``critical``).
        quality: the data-quality level name (``excellent`` .. ``critical``).
        quality_reasons: why quality is what it is.
    """

    sensor_id: str
    rolling_rmse: float | None = None
    rolling_points: int = 0
    validation_rmse: float | None = None
    events_last_hour: int = 0
    drift_severity: str | None = None
    quality: str | None = None
    quality_reasons: tuple[str, ...] = ()

    @property
    def rmse_ratio(self) -> float | None:
        """``rolling_rmse / validation_rmse``; None when either is unknown or the validation RMSE is 0."""
        if self.rolling_rmse is None or not self.validation_rmse:
            return None
        return self.rolling_rmse / self.validation_rmse


@dataclass(frozen=True)
class Alert:
    """One degraded KPI of one sensor.

    Attributes:
        sensor_id: the sensor.
        kind: which KPI.
        level: warning or critical.
        message: one line for the operator.
        value: the KPI's value (a number, or a level name for drift and quality).
        limit: the configured limit it crossed.
    """

    sensor_id: str
    kind: AlertKind
    level: AlertLevel
    message: str
    value: float | str
    limit: float | str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"], out["level"] = self.kind.value, self.level.value
        return out


def events_in_last_hour(end_times: Sequence[float | None], now: float | None) -> int:
    """How many of the events' end times ``[k]`` fall in ``(now - 1 h, now]`` (None entries never do)."""
    if now is None:
        return 0
    ends = np.array([np.nan if t is None else t for t in end_times], dtype=np.float64)
    return int(np.count_nonzero((ends > now - HOUR_S) & (ends <= now)))


def _level(value: float, limit: float) -> AlertLevel:
    return AlertLevel.CRITICAL if value >= 2.0 * limit else AlertLevel.WARNING


def sensor_alerts(kpis: SensorKpis, limits: DashboardSettings) -> tuple[Alert, ...]:
    """The alerts of one sensor, in the order forecast, anomaly rate, drift, quality.

    Raises:
        DataError: ``drift_severity`` or ``quality`` is not a known level name.
    """
    sid = kpis.sensor_id
    out: list[Alert] = []
    ratio = kpis.rmse_ratio
    if ratio is not None and kpis.rolling_points >= limits.min_rmse_points and ratio > limits.max_rmse_ratio:
        message = (
            f"forecast RMSE {kpis.rolling_rmse:.4g} is {ratio:.2f}x the validation RMSE "
            f"{kpis.validation_rmse:.4g} (limit {limits.max_rmse_ratio:g}x, last {kpis.rolling_points} readings)"
        )
        level = _level(ratio, limits.max_rmse_ratio)
        out.append(Alert(sid, AlertKind.FORECAST, level, message, ratio, limits.max_rmse_ratio))
    if kpis.events_last_hour > limits.max_events_per_hour:
        message = f"{kpis.events_last_hour} anomalies in the last hour (limit {limits.max_events_per_hour:g})"
        level = _level(kpis.events_last_hour, max(limits.max_events_per_hour, 1.0))
        value, limit = kpis.events_last_hour, limits.max_events_per_hour
        out.append(Alert(sid, AlertKind.ANOMALY_RATE, level, message, value, limit))
    if kpis.drift_severity is not None:
        try:
            severity = Severity(kpis.drift_severity)
        except ValueError:
            raise DataError(f"sensor {sid}: unknown drift severity {kpis.drift_severity!r}") from None
        if severity >= Severity(limits.drift_severity) and severity != Severity.NONE:
            level = AlertLevel.CRITICAL if severity == Severity.CRITICAL else AlertLevel.WARNING
            message = f"drift severity {severity.value} (alert at {limits.drift_severity} or above)"
            out.append(Alert(sid, AlertKind.DRIFT, level, message, severity.value, limits.drift_severity))
    if kpis.quality is not None:
        if kpis.quality not in ("excellent", "good", "fair", "poor", "critical"):
            raise DataError(f"sensor {sid}: unknown quality level {kpis.quality!r}")
        if kpis.quality in limits.quality_levels:
            level = AlertLevel.CRITICAL if kpis.quality == "critical" else AlertLevel.WARNING
            reasons = f": {'; '.join(kpis.quality_reasons)}" if kpis.quality_reasons else ""
            message = f"data quality {kpis.quality}{reasons}"
            out.append(Alert(sid, AlertKind.QUALITY, level, message, kpis.quality, ", ".join(limits.quality_levels)))
    return tuple(out)
