"""Anomaly detection from forecast errors: smoothing, Telemanom's dynamic threshold, streaming, SPOT, ensembles."""

from pdm_ray.detection.ensemble import combine_errors, error_scale
from pdm_ray.detection.spot import SpotState, fit_spot, spot_from_arrays, spot_to_arrays, update_spot
from pdm_ray.detection.streaming import StreamState, init_stream, state_from_arrays, state_to_arrays, update_stream
from pdm_ray.detection.threshold import AnomalySequence, DetectionResult, detect, find_anomalies

__all__ = [
    "AnomalySequence",
    "DetectionResult",
    "SpotState",
    "StreamState",
    "combine_errors",
    "detect",
    "error_scale",
    "find_anomalies",
    "fit_spot",
    "init_stream",
    "spot_from_arrays",
    "spot_to_arrays",
    "state_from_arrays",
    "state_to_arrays",
    "update_spot",
    "update_stream",
]
