"""Sensor/channel ids: they become file names, actor names and MLflow model names."""

from __future__ import annotations

import re

from pdm_ray.errors import InvalidChannelError

SENSOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_sensor_id(sensor_id: object) -> str:
    """Return ``sensor_id`` unchanged if it is a valid id.

    Raises:
        InvalidChannelError: it is not a string matching ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$``.
    """
    if not isinstance(sensor_id, str) or not SENSOR_ID_PATTERN.fullmatch(sensor_id):
        raise InvalidChannelError(f"invalid sensor id {sensor_id!r}: must match {SENSOR_ID_PATTERN.pattern}")
    return sensor_id
