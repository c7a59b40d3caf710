"""Where a sensor actor gets one-step predictions: the ``Forecaster`` interface.

A forecaster takes a sensor id and a window ``[l_s + m, F]`` of readings in the sensor's
units and returns, without blocking, a reference to the one-step predictions of channel 0
for the last ``m`` rows (float32 ``[m]``, same units): a Ray ``ObjectRef`` (the shared
``ModelHost`` actor) or anything with ``result(timeout_s=...)`` such as a Serve
``DeploymentResponse`` (``ServeForecaster``). ``production_forecaster(settings)`` builds the
one ``actors.forecaster`` names. This module imports no JAX, and Ray Serve only when a
``ServeForecaster`` first predicts, so the sensor actors stay small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayError

from pdm_ray.config import Settings

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponse

SERVE_APP = "pdm"
"""The Serve application ``pdm-ray serve`` and ``pdm-ray run`` deploy (``serve_apps.app.application``)."""
MODEL_DEPLOYMENT = "SensorModels"
"""Its model deployment (``serve_apps.model_server.SensorModels``)."""


class ForecasterUnavailableError(RayError):
    """The forecaster's service cannot take requests: no Serve instance, application or deployment."""


class Forecaster(Protocol):
    """Asynchronous one-step predictions for a sensor's window."""

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> Any:
        """Start predicting; return an ``ObjectRef`` or an object with ``result(timeout_s=...)``."""
        ...


def wait_predictions(pending: Any, timeout_s: float) -> Any:
    """Block until ``pending`` (from ``Forecaster.predict``) is ready and return its value.

    Raises:
        ray.exceptions.GetTimeoutError: not ready within ``timeout_s``.
        ForecasterUnavailableError: Serve could not take the request (e.g. the deployment is gone).
        Whatever the forecaster raised (e.g. ``UnknownSensorError``: no model for the sensor).
    """
    if isinstance(pending, ray.ObjectRef):
        return ray.get(pending, timeout=timeout_s)
    try:
        return pending.result(timeout_s=timeout_s)
    except RayError:  # incl. GetTimeoutError and the forecaster's own errors raised in a replica
        raise
    except TimeoutError as exc:  # Serve: no replica took the request in time
        raise GetTimeoutError(f"not ready within {timeout_s:g} s: {exc}") from exc
    except Exception as exc:
        if _is_serve_error(exc):  # BackPressureError, DeploymentUnavailableError, ...
            raise ForecasterUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        raise


def _is_serve_error(exc: BaseException) -> bool:
    """Whether ``exc`` is Ray Serve's own (imported here only, after something failed)."""
    from ray.serve.exceptions import RayServeException

    return isinstance(exc, RayServeException)


class ModelHostForecaster:
    """A ``Forecaster`` backed by the fleet's shared ``ModelHost`` actor (see ``actors.model_host``)."""

    def __init__(self, host: ActorHandle) -> None:
        self.host = host

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> ray.ObjectRef:
        return self.host.predict.remote(sensor_id, window)


class ServeForecaster:
    """A ``Forecaster`` backed by the Serve model deployment (``SensorModels.predict``).

    The deployment resolves the sensor's production model as the HTTP API does and returns
    what ``ModelHost.predict`` returns; ``predict`` here returns its ``DeploymentResponse``.
    Only the names travel (to the Fleet, to every sensor actor): the handle is looked up on
    first use in each process, so Ray Serve is imported there only then, and the
    application may be deployed after the actors start.

    Args:
        app_name: the Serve application (``pdm``, as ``pdm-ray serve`` and ``pdm-ray run`` deploy it).
        deployment_name: its model deployment.
    """

    def __init__(self, app_name: str = SERVE_APP, deployment_name: str = MODEL_DEPLOYMENT) -> None:
        self.app_name = app_name
        self.deployment_name = deployment_name
        self._handle: DeploymentHandle | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"app_name": self.app_name, "deployment_name": self.deployment_name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.app_name = state["app_name"]
        self.deployment_name = state["deployment_name"]
        self._handle = None

    def handle(self) -> DeploymentHandle:
        """The deployment's handle, looked up once per process.

        Raises:
            ForecasterUnavailableError: Serve is not running or has no such deployment.
        """
        if self._handle is None:
            from ray import serve
            from ray.serve.exceptions import RayServeException

            try:
                self._handle = serve.get_deployment_handle(self.deployment_name, self.app_name)
            except (RayServeException, KeyError) as exc:
                raise ForecasterUnavailableError(
                    f"no Serve deployment {self.deployment_name!r} in application {self.app_name!r}: {exc}"
                ) from exc
        return self._handle

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> DeploymentResponse:
        return self.handle().predict.remote(sensor_id, window)

    def forget(self, sensor_id: str, timeout_s: float = 30.0) -> list[str]:
        """Make the deployment resolve the sensor's production version again at its next prediction (blocking).

        Acts on the replica that takes the call; others follow within ``serve.version_ttl_s``.
        Returns the sensors that replica had cached.
        """
        return list(wait_predictions(self.handle().forget.remote(sensor_id), timeout_s))


def production_forecaster(settings: Settings) -> Forecaster:
    """The production-model forecaster ``actors.forecaster`` names.

    ``model_host``: a ``ModelHostForecaster`` over the fleet's ``ModelHost`` (started if
    there is none); ``serve``: a ``ServeForecaster`` over the ``pdm`` application's model
    deployment (which must be running when predictions are asked for).
    """
    if settings.actors.forecaster == "serve":
        return ServeForecaster()
    from actors.model_host import model_host_handle  # it imports actors.sensor, which imports this module

    return ModelHostForecaster(model_host_handle(settings))


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
