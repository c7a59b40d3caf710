"""Which registry version is a sensor's production model right now: a TTL cache.

Asking the MLflow registry on every request would put a database query on the hot path,
so each ingress replica remembers a sensor's production version for ``ttl_s`` seconds.
A promotion is therefore picked up within ``ttl_s`` without any restart, or at once by
``POST /v1/models/reload``, which calls ``forget`` and resolves again. Only positive
answers are cached: a sensor that has no production model is asked about again on its
next request, so a first promotion shows up immediately.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pdm_ray.config import ServeSettings
from pdm_ray.tracking.registry import VersionInfo
from pdm_ray.tracking.resolve import production_version
from pdm_ray.tracking.runs import Tracking

Resolver = Callable[[str], VersionInfo]
"""Blocking lookup of a sensor's production version; raises the core's errors when none."""


def model_id(version: VersionInfo) -> str:
    """The multiplexed model id of a version, ``<name>/<version>``."""
    return f"{version.name}/{version.version}"


class ProductionVersions:
    """Sensor id -> production ``VersionInfo``, each answer kept for ``ttl_s`` seconds.

    Args:
        resolve: blocking registry lookup (run in a worker thread).
        ttl_s: how long an answer stays valid; 0 asks the registry every time.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, resolve: Resolver, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._resolve = resolve
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, VersionInfo]] = {}

    async def get(self, sensor_id: str) -> VersionInfo:
        """The cached answer if still fresh, else a fresh lookup (which is then cached)."""
        hit = self._cache.get(sensor_id)
        now = self._clock()
        if hit is not None and now < hit[0]:
            return hit[1]
        version = await asyncio.to_thread(self._resolve, sensor_id)
        self._cache[sensor_id] = (now + self._ttl_s, version)
        return version

    def forget(self, sensor_id: str | None = None) -> list[str]:
        """Drop one sensor's cached answer (or all); returns the sensors that were cached."""
        if sensor_id is None:
            dropped = sorted(self._cache)
            self._cache.clear()
            return dropped
        return [sensor_id] if self._cache.pop(sensor_id, None) is not None else []

    def cached(self) -> dict[str, VersionInfo]:
        """Every cached answer, fresh or stale."""
        return {sensor: entry[1] for sensor, entry in self._cache.items()}


def registry_versions(tracking: Tracking, settings: ServeSettings) -> ProductionVersions:
    """Production versions from the MLflow registry, kinds in ``serve.model_kinds`` order."""
    kinds = tuple(settings.model_kinds)
    return ProductionVersions(lambda sensor: production_version(tracking, sensor, kinds), settings.version_ttl_s)
