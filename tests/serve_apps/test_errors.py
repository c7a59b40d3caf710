"""Errors -> HTTP: client faults are 4xx, missing models 503, only genuine faults 500."""

from __future__ import annotations

import pickle

import pytest
from ray.exceptions import RayTaskError

from pdm_ray.errors import (
    DataError,
    FleetUnavailableError,
    InsufficientDataError,
    InvalidBatchError,
    InvalidChannelError,
    RegistryError,
    TrackingError,
    UnknownSensorError,
)
from serve_apps.errors import ApiError, classify
from serve_apps.timestamps import TimestampError


@pytest.mark.parametrize(
    ("exc", "status", "code", "field"),
    [
        (InvalidChannelError("bad id"), 404, "unknown_sensor", "sensor_id"),
        (UnknownSensorError("no such sensor"), 404, "unknown_sensor", "sensor_id"),
        (RegistryError("no production model yet"), 503, "no_production_model", None),
        (TrackingError("store unreachable"), 503, "registry_unavailable", None),
        (FleetUnavailableError("no fleet"), 503, "fleet_unavailable", None),
        (DataError("bad shape"), 422, "invalid_input", None),
        (InsufficientDataError("too short"), 422, "invalid_input", None),
        (InvalidBatchError("timestamps not increasing"), 422, "invalid_input", None),
        (TimestampError("timestamps[2] is not after timestamps[1]"), 422, "invalid_input", "timestamps"),
        (ApiError(422, "horizon_too_large", "horizon 9 > 5", "horizon"), 422, "horizon_too_large", "horizon"),
        (RuntimeError("boom"), 500, "internal", None),
    ],
)
def test_classify(exc: Exception, status: int, code: str, field: str | None) -> None:
    err = classify(exc)
    assert (err.status, err.code, err.field) == (status, code, field)
    if status != 500:
        assert err.detail == str(exc)
    else:
        assert "boom" not in err.detail  # internals stay in the log, not in the response


def test_replica_errors_are_unwrapped_from_ray_task_error() -> None:
    cause = ApiError(422, "too_few_points", "detection needs at least 31 values (l_s=30), got 10", "values")
    wrapped = RayTaskError("SensorModels.detect", "Traceback ...", cause).as_instanceof_cause()
    assert isinstance(wrapped, ApiError)
    assert str(wrapped) != cause.detail  # Ray's str is a traceback: classify must use the cause
    err = classify(wrapped)
    assert (err.status, err.code, err.detail, err.field) == (422, "too_few_points", cause.detail, "values")


def test_api_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(ApiError(503, "model_unavailable", "cannot load m/1", None)))
    assert (err.status, err.code, err.detail, err.field) == (503, "model_unavailable", "cannot load m/1", None)
