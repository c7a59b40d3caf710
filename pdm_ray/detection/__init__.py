"""Anomaly detection from forecast errors: smoothing, Telemanom's dynamic threshold, streaming."""

from pdm_ray.detection.threshold import AnomalySequence, DetectionResult, detect, find_anomalies

__all__ = ["AnomalySequence", "DetectionResult", "detect", "find_anomalies"]
