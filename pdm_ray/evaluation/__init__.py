"""Scoring detections and forecasts: event-level (Telemanom), point-wise, ROC-AUC, forecast KPIs."""

from pdm_ray.evaluation.events import EventCounts, EventSummary, score_events, summarize, total_counts
from pdm_ray.evaluation.forecast import ForecastKPIs, forecast_kpis
from pdm_ray.evaluation.pointwise import PointMetrics, intervals_to_mask, point_metrics, roc_auc, roc_curve

__all__ = [
    "EventCounts",
    "EventSummary",
    "ForecastKPIs",
    "PointMetrics",
    "forecast_kpis",
    "intervals_to_mask",
    "point_metrics",
    "roc_auc",
    "roc_curve",
    "score_events",
    "summarize",
    "total_counts",
]
