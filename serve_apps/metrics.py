"""Request and anomaly metrics of the HTTP API, exported by Ray in Prometheus format.

Ray prefixes application metrics with ``ray_`` on its metrics endpoint
(``ray_pdm_serve_requests_total`` etc.). The ``sensor`` tag holds the sensor id of a
request about one sensor that succeeded (2xx: the id is valid and a model or the Fleet
knows it) and ``-`` otherwise, so that probing random ids cannot grow the number of series
without bound, whatever error they get.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Histogram

# Milliseconds; covers a warm /detect (a few ms) up to a cold model load (seconds).
LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


class ApiMetrics:
    """The ingress's counters and latency histogram (one instance per replica)."""

    def __init__(self) -> None:
        self._requests = Counter(
            "pdm_serve_requests_total",
            description="HTTP requests handled by the pdm-ray API.",
            tag_keys=("route", "sensor", "status"),
        )
        self._latency = Histogram(
            "pdm_serve_request_latency_ms",
            description="Latency of pdm-ray API requests inside the ingress replica, in milliseconds.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("route", "sensor"),
        )
        self._anomalies = Counter(
            "pdm_serve_anomalies_flagged_total",
            description="Anomalous sequences flagged by /detect, per sensor.",
            tag_keys=("sensor",),
        )

    def request(self, route: str, sensor: str | None, status: int, seconds: float) -> None:
        """Count one finished request and observe its latency; ``sensor`` None tags ``-``."""
        tag = sensor or "-"
        self._requests.inc(tags={"route": route, "sensor": tag, "status": str(status)})
        self._latency.observe(seconds * 1e3, tags={"route": route, "sensor": tag})

    def anomalies(self, sensor: str, count: int) -> None:
        """Count ``count`` sequences flagged for ``sensor`` (no-op for 0)."""
        if count > 0:
            self._anomalies.inc(count, tags={"sensor": sensor})
