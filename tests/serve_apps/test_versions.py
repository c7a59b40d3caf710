"""ProductionVersions: a promotion shows after the TTL, or at once after ``forget``; misses are never cached."""

from __future__ import annotations

import asyncio

import pytest

from pdm_ray.errors import RegistryError, UnknownSensorError
from pdm_ray.tracking.resolve import production_version
from serve_apps.versions import ProductionVersions, model_id
from tests.serve_apps.support import Registry, promote_alias, register


class Clock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _versions(registry: Registry, clock: Clock, ttl_s: float) -> ProductionVersions:
    return ProductionVersions(lambda sensor: production_version(registry.tracking, sensor), ttl_s, clock)


def test_promotion_is_seen_after_the_ttl_or_after_forget(registry: Registry) -> None:
    clock = Clock()
    versions = _versions(registry, clock, ttl_s=30.0)
    first = asyncio.run(versions.get("S-1"))
    assert (first.name, first.version, model_id(first)) == ("pdm-S-1-lstm", "1", "pdm-S-1-lstm/1")

    second = register(registry.tracking, "S-1", registry.models[1], production=False)
    promote_alias(registry.tracking, "S-1", second.version)
    clock.now = 29.9
    assert asyncio.run(versions.get("S-1")).version == "1"  # still cached
    clock.now = 30.0
    assert asyncio.run(versions.get("S-1")).version == second.version  # expired: asked again

    promote_alias(registry.tracking, "S-1", "1")  # roll back
    assert asyncio.run(versions.get("S-1")).version == second.version
    assert versions.forget("S-1") == ["S-1"]
    assert asyncio.run(versions.get("S-1")).version == "1"
    assert versions.forget() == ["S-1"]
    assert versions.cached() == {}


def test_missing_models_are_not_cached(registry: Registry) -> None:
    clock = Clock()
    versions = _versions(registry, clock, ttl_s=1e9)
    with pytest.raises(RegistryError):
        asyncio.run(versions.get("N-1"))
    with pytest.raises(UnknownSensorError):
        asyncio.run(versions.get("nobody"))
    assert versions.cached() == {}
    promote_alias(registry.tracking, "N-1", "1")
    try:
        assert asyncio.run(versions.get("N-1")).version == "1"  # no restart, no TTL wait
    finally:
        registry.tracking.client.delete_registered_model_alias("pdm-N-1-lstm", "production")
