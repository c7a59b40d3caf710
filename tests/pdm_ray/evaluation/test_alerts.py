"""Operator alerts from a sensor's KPIs and the dashboard limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdm_ray.config import DashboardSettings
from pdm_ray.errors import DataError
from pdm_ray.evaluation.alerts import AlertKind, AlertLevel, SensorKpis, events_in_last_hour, sensor_alerts

LIMITS = DashboardSettings(max_rmse_ratio=2.0, min_rmse_points=100, max_events_per_hour=3, drift_severity="high")


def kinds(kpis: SensorKpis, limits: DashboardSettings = LIMITS) -> list[tuple[str, str]]:
    return [(a.kind.value, a.level.value) for a in sensor_alerts(kpis, limits)]


def test_a_healthy_sensor_has_no_alerts() -> None:
    kpis = SensorKpis("A-1", 0.3, 500, 0.2, 1, "medium", "good")
    assert kpis.rmse_ratio == pytest.approx(1.5)
    assert sensor_alerts(kpis, LIMITS) == ()
    assert sensor_alerts(SensorKpis("A-1"), LIMITS) == ()  # nothing known yet


def test_each_limit_by_hand() -> None:
    assert kinds(SensorKpis("A-1", 0.5, 500, 0.2)) == [("forecast", "warning")]  # ratio 2.5 > 2
    assert kinds(SensorKpis("A-1", 0.9, 500, 0.2)) == [("forecast", "critical")]  # 4.5 >= 2 x 2
    assert kinds(SensorKpis("A-1", 0.9, 99, 0.2)) == []  # too few scored readings yet
    assert kinds(SensorKpis("A-1", 0.9, 500, 0.0)) == []  # no usable validation RMSE
    assert kinds(SensorKpis("A-1", events_last_hour=3)) == []
    assert kinds(SensorKpis("A-1", events_last_hour=4)) == [("anomaly_rate", "warning")]
    assert kinds(SensorKpis("A-1", events_last_hour=6)) == [("anomaly_rate", "critical")]
    assert kinds(SensorKpis("A-1", drift_severity="medium")) == []
    assert kinds(SensorKpis("A-1", drift_severity="high")) == [("drift", "warning")]
    assert kinds(SensorKpis("A-1", drift_severity="critical")) == [("drift", "critical")]
    assert kinds(SensorKpis("A-1", quality="fair")) == []
    assert kinds(SensorKpis("A-1", quality="poor")) == [("quality", "warning")]
    assert kinds(SensorKpis("A-1", quality="critical")) == [("quality", "critical")]
    everything = SensorKpis("A-1", 0.5, 500, 0.2, 4, "high", "poor", ("12% missing",))
    alerts = sensor_alerts(everything, LIMITS)
    assert [a.kind for a in alerts] == [AlertKind.FORECAST, AlertKind.ANOMALY_RATE, AlertKind.DRIFT, AlertKind.QUALITY]
    assert alerts[0].message == ("forecast RMSE 0.5 is 2.50x the validation RMSE 0.2 (limit 2x, last 500 readings)")
    assert alerts[3].message == "data quality poor: 12% missing"
    assert alerts[0].to_dict()["kind"] == "forecast" and alerts[0].to_dict()["level"] == "warning"


def test_limits_are_configurable() -> None:
    strict = DashboardSettings(drift_severity="low", quality_levels=("fair", "poor", "critical"), max_events_per_hour=0)
    assert kinds(SensorKpis("A-1", drift_severity="low", quality="fair", events_last_hour=1), strict) == [
        ("anomaly_rate", "warning"),  # with a limit of 0, critical from 2 events
        ("drift", "warning"),
        ("quality", "warning"),
    ]
    assert kinds(SensorKpis("A-1", drift_severity="none"), DashboardSettings(drift_severity="none")) == []


def test_unknown_levels_are_errors() -> None:
    with pytest.raises(DataError, match="unknown drift severity 'bad'"):
        sensor_alerts(SensorKpis("A-1", drift_severity="bad"), LIMITS)
    with pytest.raises(DataError, match="unknown quality level 'meh'"):
        sensor_alerts(SensorKpis("A-1", quality="meh"), LIMITS)


def test_events_in_last_hour_by_hand() -> None:
    ends = [100.0, 3700.0, 3701.0, None, 7300.0]
    assert events_in_last_hour(ends, 7300.0) == 2  # (3700, 7300]: 3701 and 7300
    assert events_in_last_hour(ends, None) == 0
    assert events_in_last_hour([], 5.0) == 0


@given(
    rolling=st.floats(0, 100),
    validation=st.floats(1e-3, 100),
    points=st.integers(0, 1000),
    ratio_limit=st.floats(0.1, 10),
)
def test_forecast_alert_iff_ratio_over_the_limit(
    rolling: float, validation: float, points: int, ratio_limit: float
) -> None:
    limits = DashboardSettings(max_rmse_ratio=ratio_limit, min_rmse_points=100)
    alerts = sensor_alerts(SensorKpis("A-1", rolling, points, validation), limits)
    fires = points >= 100 and rolling / validation > ratio_limit
    assert [a.kind for a in alerts] == ([AlertKind.FORECAST] if fires else [])
    if fires:
        assert alerts[0].level == (
            AlertLevel.CRITICAL if rolling / validation >= 2 * ratio_limit else AlertLevel.WARNING
        )
