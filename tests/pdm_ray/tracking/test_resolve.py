"""production_version: the version behind ``production``, and 404-vs-503 errors, on a real SQLite registry."""

from __future__ import annotations

import pytest

from pdm_ray.errors import InvalidChannelError, RegistryError, UnknownSensorError
from pdm_ray.tracking.registry import PRODUCTION, STAGING
from pdm_ray.tracking.resolve import production_version
from pdm_ray.tracking.runs import Tracking, connect


@pytest.fixture
def tracking(mlflow_uri: str) -> Tracking:
    return connect(mlflow_uri, "resolve-test")


def _versions(tracking: Tracking, name: str, n: int) -> None:
    """Register ``name`` with ``n`` versions (the lookup reads aliases only, so no artifacts are needed)."""
    tracking.client.create_registered_model(name)
    for _ in range(n):
        tracking.client.create_model_version(name, source="file:///nowhere", run_id=None)


def test_production_alias_wins(tracking: Tracking) -> None:
    _versions(tracking, "pdm-A-1-lstm", 3)
    tracking.client.set_registered_model_alias("pdm-A-1-lstm", PRODUCTION, "2")
    tracking.client.set_registered_model_alias("pdm-A-1-lstm", STAGING, "3")
    found = production_version(tracking, "A-1")
    assert (found.name, found.version) == ("pdm-A-1-lstm", "2")
    assert PRODUCTION in found.aliases


def test_kind_order_decides_between_two_production_models(tracking: Tracking) -> None:
    for kind in ("lstm", "transformer"):
        _versions(tracking, f"pdm-B-2-{kind}", 1)
        tracking.client.set_registered_model_alias(f"pdm-B-2-{kind}", PRODUCTION, "1")
    assert production_version(tracking, "B-2").name == "pdm-B-2-lstm"
    assert production_version(tracking, "B-2", ("transformer", "lstm")).name == "pdm-B-2-transformer"


def test_a_later_kind_serves_when_the_first_has_no_production(tracking: Tracking) -> None:
    _versions(tracking, "pdm-C-3-lstm", 1)
    _versions(tracking, "pdm-C-3-transformer", 1)
    tracking.client.set_registered_model_alias("pdm-C-3-transformer", PRODUCTION, "1")
    assert production_version(tracking, "C-3").name == "pdm-C-3-transformer"


def test_unknown_sensor_is_not_a_registry_error(tracking: Tracking) -> None:
    with pytest.raises(UnknownSensorError, match=r"pdm-Z-9-lstm, pdm-Z-9-transformer"):
        production_version(tracking, "Z-9")


def test_registered_without_production_says_what_exists(tracking: Tracking) -> None:
    _versions(tracking, "pdm-D-4-lstm", 1)
    tracking.client.set_registered_model_alias("pdm-D-4-lstm", STAGING, "1")
    with pytest.raises(RegistryError, match=r"no production model yet: pdm-D-4-lstm \(staging=1\)"):
        production_version(tracking, "D-4")


@pytest.mark.parametrize("bad", ["", "../etc", "a b", "x" * 65])
def test_invalid_ids_are_refused_before_any_lookup(tracking: Tracking, bad: str) -> None:
    with pytest.raises(InvalidChannelError):
        production_version(tracking, bad)
