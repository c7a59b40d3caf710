"""Which registered version serves a sensor: the ``production`` alias, looked up by sensor id.

A sensor may have one registered model per forecaster kind (``pdm-<sensor>-lstm``,
``pdm-<sensor>-transformer``); the first kind in the caller's order whose model has a
``production`` version serves it. The errors tell apart "no such sensor" (nothing
registered under any kind) from "registered, but nothing promoted yet", because an API
answers the first with 404 and the second with 503.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from pdm_ray.errors import RegistryError, TrackingError, UnknownSensorError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.tracking.registry import PRODUCTION, ModelKind, VersionInfo, model_name
from pdm_ray.tracking.runs import Tracking

_MISSING = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def production_version(
    tracking: Tracking, sensor_id: str, kinds: Sequence[ModelKind] = ("lstm", "transformer")
) -> VersionInfo:
    """The version behind the ``production`` alias of the sensor's first registered kind that has one.

    Args:
        tracking: the registry.
        sensor_id: the sensor (channel) id.
        kinds: forecaster kinds in order of preference.

    Raises:
        InvalidChannelError: ``sensor_id`` is not a valid id.
        UnknownSensorError: no registered model ``pdm-<sensor_id>-<kind>`` for any kind.
        RegistryError: models are registered but none has a ``production`` version; the
            message lists what exists (e.g. the ``staging`` version awaiting promotion).
        TrackingError: the registry is unreachable.
    """
    validate_sensor_id(sensor_id)
    registered: list[str] = []
    for kind in kinds:
        name = model_name(sensor_id, kind)
        try:
            return VersionInfo.of(tracking.client.get_model_version_by_alias(name, PRODUCTION))
        except MlflowException:
            pass  # no such model or no such alias: the registered model tells which
        try:
            model = tracking.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != _MISSING:
                raise TrackingError(f"reading {name} failed at {tracking.uri}: {exc}") from exc
            continue
        aliases = ", ".join(f"{alias}={version}" for alias, version in sorted((model.aliases or {}).items()))
        registered.append(f"{name} ({aliases or 'no aliases'})")
    if not registered:
        names = ", ".join(model_name(sensor_id, k) for k in kinds)
        raise UnknownSensorError(f"sensor {sensor_id!r} has no registered model ({names}) at {tracking.uri}")
    raise RegistryError(
        f"sensor {sensor_id!r} has no {PRODUCTION} model yet: {'; '.join(registered)}; promote a version first"
    )
