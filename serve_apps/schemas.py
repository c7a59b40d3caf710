"""Versioned JSON schemas of the HTTP API (``/v1``).

Every number a client sends is a strict, finite float32: JSON strings and booleans are
refused rather than coerced, and ``NaN``/``Infinity`` tokens (which Python's ``json``
accepts although JSON has no such values) fail validation, as do values that overflow
float32. Shapes that depend on the model (``l_s``, the number of command columns) are
checked by the model deployment once it knows the model.

Index convention for ``/detect``: the first ``l_s`` points of a submitted window are
context for the first prediction; ``scores[i]`` belongs to window index ``scored_from + i``
with ``scored_from == l_s``, and ``sequences`` hold inclusive indices into the submitted
window itself.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict

FLOAT32_MAX = float(np.finfo(np.float32).max)

Value = Annotated[float, Strict(), AllowInfNan(False), Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
"""One reading: a finite JSON number that fits in float32."""

Timestamp = (
    Annotated[float, Strict(), AllowInfNan(False), Field(ge=-1e11, le=1e11)]
    | Annotated[str, Field(min_length=1, max_length=64)]
)
"""An ISO-8601 string (no zone = UTC) or epoch seconds."""

SensorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Body):
    """Recent readings of one sensor.

    ``values`` is channel 0, shape ``[T]``; ``commands`` the command columns, shape
    ``[T, F - 1]``, required when the sensor's model was trained with ``F > 1`` features.
    """

    values: list[Value] = Field(min_length=1)
    commands: list[list[Value]] | None = None


class DetectRequest(Window):
    """``POST /v1/sensors/{id}/detect``: one window to score."""


class BulkWindow(Window):
    """One sensor's window inside a bulk detection request."""

    sensor_id: SensorId


class BulkDetectRequest(_Body):
    """``POST /v1/detect``: windows of many sensors in one request."""

    windows: list[BulkWindow] = Field(min_length=1)


class ForecastRequest(Window):
    """``POST /v1/sensors/{id}/forecast``: recent readings with their timestamps.

    ``horizon`` (default: the model's ``n_predictions``) may not exceed ``n_predictions``;
    forecasts are not iterated, because future command columns are unknown.
    """

    timestamps: list[Timestamp] = Field(min_length=2)
    horizon: Annotated[int, Strict(), Field(gt=0)] | None = None


class ReadingsRequest(Window):
    """``POST /v1/sensors/{id}/readings``: a batch of new readings for the sensor's actor.

    ``seq`` is the producer's batch sequence number (a replayed ``seq`` is acknowledged as a
    duplicate); ``timestamps`` are ISO-8601 strings or epoch seconds, strictly increasing.
    """

    seq: Annotated[int, Strict(), Field(ge=0)]
    timestamps: list[Timestamp] = Field(min_length=1)


class ReloadRequest(_Body):
    """``POST /v1/models/reload``: forget cached production versions (one sensor or all)."""

    sensor_id: SensorId | None = None


class ModelRef(_Body):
    """A registered model version: ``name`` is ``pdm-<sensor>-<kind>``."""

    name: str
    version: str


class Sequence(_Body):
    """A flagged anomalous sequence: inclusive indices into the submitted window."""

    start: int
    end: int
    score: float


class DetectResponse(_Body):
    """Scores of one window (see the module docstring for the index convention).

    ``scores``, ``predictions``, ``smoothed_errors`` and ``threshold`` have ``n_points -
    scored_from`` entries; all but ``scores`` (dimensionless) are in the units of ``values``.
    """

    sensor_id: str
    model: ModelRef
    n_points: int
    scored_from: int
    scores: list[float]
    predictions: list[float]
    smoothed_errors: list[float]
    threshold: list[float]
    sequences: list[Sequence]


class ErrorBody(_Body):
    """Every 4xx/5xx body: a stable code, a human message and the offending field (if any)."""

    error: str
    detail: str
    field: str | None = None


class BulkDetectItem(_Body):
    """One sensor's outcome in a bulk request: ``result`` or ``error``, with its HTTP status."""

    sensor_id: str
    status: int
    result: DetectResponse | None = None
    error: ErrorBody | None = None


class BulkDetectResponse(_Body):
    """Outcomes in request order."""

    results: list[BulkDetectItem]


class ForecastPoint(_Body):
    """One forecast value at its future time (ISO-8601 UTC and epoch seconds)."""

    timestamp: str
    epoch_s: float
    value: float


class ForecastResponse(_Body):
    """Forecasts at ``last input time + k * interval_s`` for ``k = 1 .. horizon``."""

    sensor_id: str
    model: ModelRef
    interval_s: float
    forecasts: list[ForecastPoint]


class ReloadResponse(_Body):
    """The production versions resolved after a reload, per sensor that has one."""

    reloaded: dict[str, ModelRef]


class Health(_Body):
    """``GET /healthz``."""

    status: Literal["ok"] = "ok"
