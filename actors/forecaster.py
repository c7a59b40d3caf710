"""Where a sensor actor gets one-step predictions: the ``Forecaster`` interface.

A forecaster takes a sensor id and a window ``[l_s + m, F]`` of readings in the sensor's
units and returns, without blocking, a reference to the one-step predictions of channel 0
for the last ``m`` rows (float32 ``[m]``, same units): a Ray ``ObjectRef`` (the shared
``ModelHost`` actor) or anything with ``result(timeout_s=...)`` such as a Serve
``DeploymentResponse``. This module imports no JAX, so the sensor actors stay small.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import ray
from ray.actor import ActorHandle


class Forecaster(Protocol):
    """Asynchronous one-step predictions for a sensor's window."""

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> Any:
        """Start predicting; return an ``ObjectRef`` or an object with ``result(timeout_s=...)``."""
        ...


def wait_predictions(pending: Any, timeout_s: float) -> Any:
    """Block until ``pending`` (from ``Forecaster.predict``) is ready and return its value.

    Raises:
        ray.exceptions.GetTimeoutError: not ready within ``timeout_s`` (ObjectRef case).
        Whatever the forecaster raised (e.g. ``UnknownSensorError``: no model for the sensor).
    """
    if isinstance(pending, ray.ObjectRef):
        return ray.get(pending, timeout=timeout_s)
    return pending.result(timeout_s=timeout_s)


class ModelHostForecaster:
    """A ``Forecaster`` backed by the fleet's shared ``ModelHost`` actor (see ``actors.model_host``)."""

    def __init__(self, host: ActorHandle) -> None:
        self.host = host

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> ray.ObjectRef:
        return self.host.predict.remote(sensor_id, window)


class PersistenceForecaster:
    """The naive baseline as a ``Forecaster``: each reading is predicted by the one before it.

    It scores sensors that have no trained model yet (and benchmarks the stream without
    one); it runs in the caller's process, so it needs no actor. For a window ``[T, F]`` it
    returns ``[T - 1]`` predictions of rows ``1 .. T-1``; the caller keeps the last ``m``.
    """

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> Ready:
        return Ready(np.ascontiguousarray(window[:-1, 0], dtype=np.float32))


class Ready:
    """An already-computed forecaster result (``result`` returns it at once)."""

    def __init__(self, value: npt.NDArray[np.float32]) -> None:
        self.value = value

    def result(self, timeout_s: float | None = None) -> npt.NDArray[np.float32]:
        return self.value
