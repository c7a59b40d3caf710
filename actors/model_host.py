"""``ModelHost``: one actor per fleet that holds the loaded forecasters and runs them (JAX lives here).

Sensor actors call it through ``ModelHostForecaster``. A sensor's model comes from
``load`` (a saved model directory) or, on first use, from the registry: the version behind
the ``production`` alias of ``pdm-<sensor>-<kind>`` (``pdm_ray.tracking``) for the first
kind in ``serve.model_kinds`` that has one, as the Serve API and the dashboard resolve it.
Registry models are re-resolved every ``actors.model_retry_s`` seconds, so a promotion
reaches the stream without a restart. Predictions use the model's own normalizer and come
back in the sensor's units (``pdm_ray.tracking.pyfunc.forecast``).

JAX, Flax and MLflow are imported inside the methods, never at module level: every process
that receives a handle to this actor (each sensor actor, through ``ModelHostForecaster``)
imports this module to rebuild the handle, and must stay small.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import ray

from actors.sensor import absolute_paths
from pdm_ray.config import Settings
from pdm_ray.errors import UnknownSensorError
from pdm_ray.ids import validate_sensor_id

if TYPE_CHECKING:
    from pdm_ray.models import TrainedModel

logger = logging.getLogger(__name__)

MODEL_HOST_NAME = "model-host"


@dataclass(frozen=True)
class HostedModel:
    """A loaded model and what the retraining policy needs to know about it.

    Attributes:
        sensor_id: the sensor it serves.
        source: the model directory, or ``name/version`` in the registry.
        l_s, n_features: its input window.
        loaded_at: when it was loaded (seconds since the epoch).
        validation_mse: its validation MSE in squared sensor units (the normalized MSE times
            the square of channel 0's scale), comparable with ``SensorStatus.rolling_mse``.
        trained_at: when it was made (the registered version's creation time, or the
            directory's ``model.json`` time), seconds since the epoch.
    """

    sensor_id: str
    source: str
    l_s: int
    n_features: int
    loaded_at: float
    validation_mse: float | None
    trained_at: float | None


def _hosted(sensor_id: str, source: str, model: TrainedModel, trained_at: float | None) -> HostedModel:
    from pdm_ray.data.normalize import Normalizer

    scale = Normalizer.from_dict(model.normalizer).scale[0] if model.normalizer is not None else 1.0
    mse = float(model.val_loss) * float(scale) ** 2
    return HostedModel(
        sensor_id,
        source,
        model.spec.l_s,
        model.spec.n_features,
        time.time(),
        mse if np.isfinite(mse) else None,
        trained_at,
    )


@ray.remote(num_cpus=0)
class ModelHost:
    """Holds one forecaster per sensor and predicts with it.

    Args:
        settings: ``Settings.model_dump(mode="json")``.
        use_registry: look up sensors without a loaded model in the MLflow registry.
    """

    def __init__(self, settings: dict[str, Any], use_registry: bool = True) -> None:
        self._settings = Settings.model_validate(settings)
        self._use_registry = use_registry
        self._models: dict[str, tuple[TrainedModel, HostedModel, bool]] = {}  # id -> (model, info, from registry)

    def load(self, sensor_id: str, model_dir: str) -> HostedModel:
        """Serve the model saved in ``model_dir`` (``pdm_ray.models.save_model``) for ``sensor_id``."""
        from pdm_ray.models import load_model
        from pdm_ray.models.persistence import MODEL_FILE

        validate_sensor_id(sensor_id)
        model = load_model(model_dir)
        root = Path(model_dir).resolve()
        info = _hosted(sensor_id, str(root), model, (root / MODEL_FILE).stat().st_mtime)
        self._models[sensor_id] = (model, info, False)
        logger.info("sensor %s: serving model from %s", sensor_id, model_dir)
        return info

    def unload(self, sensor_id: str) -> bool:
        """Stop serving ``sensor_id``'s model; True if one was loaded."""
        return self._models.pop(sensor_id, None) is not None

    def models(self) -> list[HostedModel]:
        """What is loaded, by sensor id."""
        return [info for _, info, _ in sorted(self._models.values(), key=lambda v: v[1].sensor_id)]

    def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One-step predictions ``[T, F] -> [T - l_s]`` of channel 0 for rows ``l_s ..``, in the window's units.

        Raises:
            UnknownSensorError: no model is loaded and none is registered for the sensor.
            RegistryError: models are registered but none is in production.
            DataError: the window does not fit the model.
        """
        from pdm_ray.tracking.pyfunc import forecast_stream_window

        return forecast_stream_window(self._model(sensor_id), window, sensor_id)

    def _model(self, sensor_id: str) -> TrainedModel:
        entry = self._models.get(sensor_id)
        now = time.time()
        if entry is not None and (not entry[2] or now - entry[1].loaded_at < self._settings.actors.model_retry_s):
            return entry[0]
        if not self._use_registry:
            raise UnknownSensorError(f"sensor {sensor_id!r} has no model loaded in the model host")
        return self._from_registry(sensor_id, entry)

    def _from_registry(self, sensor_id: str, entry: tuple[TrainedModel, HostedModel, bool] | None) -> TrainedModel:
        from pdm_ray.tracking.registry import load_version
        from pdm_ray.tracking.resolve import production_version
        from pdm_ray.tracking.runs import connect_settings

        tracking = connect_settings(self._settings)
        try:
            version = production_version(tracking, sensor_id, tuple(self._settings.serve.model_kinds))
        except UnknownSensorError:
            self._models.pop(sensor_id, None)
            raise
        source = f"{version.name}/{version.version}"
        if entry is not None and entry[1].source == source:
            model, trained_at = entry[0], entry[1].trained_at
        else:
            model = load_version(tracking, version.name, version.version)
            created = tracking.client.get_model_version(version.name, version.version).creation_timestamp
            trained_at = created / 1000.0 if created else None
            logger.info("sensor %s: serving registered %s", sensor_id, source)
        info = _hosted(sensor_id, source, model, trained_at)
        self._models[sensor_id] = (model, info, True)
        return model


def model_host_handle(settings: Settings, use_registry: bool = True) -> Any:
    """The fleet's shared ``ModelHost`` (named ``model-host``, detached), started if there is none."""
    return ModelHost.options(
        name=MODEL_HOST_NAME, namespace=settings.ray.namespace, lifetime="detached", get_if_exists=True
    ).remote(absolute_paths(settings).model_dump(mode="json"), use_registry)
