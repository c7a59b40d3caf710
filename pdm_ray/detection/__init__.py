"""Anomaly detection from forecast errors: smoothing, Telemanom's dynamic threshold, streaming."""

from pdm_ray.detection.streaming import StreamState, init_stream, state_from_arrays, state_to_arrays, update_stream
from pdm_ray.detection.threshold import AnomalySequence, DetectionResult, detect, find_anomalies

__all__ = [
    "AnomalySequence",
    "DetectionResult",
    "StreamState",
    "detect",
    "find_anomalies",
    "init_stream",
    "state_from_arrays",
    "state_to_arrays",
    "update_stream",
]
