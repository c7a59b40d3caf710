"""The MLflow pyfunc flavour of a forecaster: a ``save_model`` directory plus a small loader class.

Nothing is pickled. The model is logged as *code* (MLflow's "models from code":
``pdm_ray/tracking/model_code.py`` calls ``set_model(ForecasterModel())``) with the
``save_model`` directory (``params.msgpack`` + ``model.json`` with spec, normalizer and
history) as its artifact, so ``mlflow.pyfunc.load_model(uri)`` in any process with
``pdm-ray`` installed rebuilds the network from plain data.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.tracking import MlflowClient

from pdm_ray.data.normalize import Normalizer
from pdm_ray.environment import muted_log_messages
from pdm_ray.errors import DataError, ModelNotTrainedError
from pdm_ray.models import TrainedModel, load_model, predict, predict_series, save_model

#: Key of the ``save_model`` directory in the pyfunc model's artifacts.
ARTIFACT_KEY = "forecaster"
#: Where a run keeps its logged pyfunc model.
MODEL_ARTIFACT_PATH = "model"
_MODEL_CODE = Path(__file__).with_name("model_code.py")
_REQUIREMENTS = ("pdm-ray", "mlflow", "jax", "flax", "numpy", "pandas")


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper around a ``TrainedModel`` loaded from its artifact directory.

    ``predict`` takes and returns original units (see ``forecast``).
    """

    def __init__(self) -> None:
        self._model: TrainedModel | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self._model = load_model(context.artifacts[ARTIFACT_KEY])

    @property
    def model(self) -> TrainedModel:
        """The wrapped model (e.g. for the promotion gate or Serve)."""
        if self._model is None:
            raise ModelNotTrainedError("the pyfunc forecaster has no model: load it with mlflow.pyfunc.load_model")
        return self._model

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> npt.NDArray[np.float32]:
        """Forecasts in original units of a series ``[T, F]`` or windows ``[N, l_s, F]`` (see ``forecast``).

        A DataFrame (one column per feature) is accepted too. The hint is ``np.ndarray``
        because MLflow then passes inputs through unchanged instead of validating them
        against an inferred schema.
        """
        data = model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input
        return forecast(self.model, data)


def forecast(model: TrainedModel, data: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Forecasts of channel 0 in original units, normalizing inputs with the model's own normalizer.

    Args:
        model: a trained forecaster; ``model.normalizer`` (if any) was fitted on its train series.
        data: windows ``[N, l_s, F]`` -> ``[N, n_predictions]``, or a series ``[T, F]``
            (``[T]`` for one feature) -> one-step-ahead predictions ``[T - l_s]`` of indices
            ``l_s .. T-1`` (Telemanom scoring).

    Raises:
        DataError: other shapes, a wrong feature count or non-finite values.
        InsufficientDataError: a series not longer than ``l_s``.
    """
    arr = np.asarray(data)
    if arr.ndim not in (1, 2, 3):
        raise DataError(f"forecast input must be windows [N, l_s, F] or a series [T, F], got shape {arr.shape}")
    norm = Normalizer.from_dict(model.normalizer) if model.normalizer is not None else None
    if arr.ndim == 3:
        x = arr if norm is None else norm.transform(arr.reshape(-1, arr.shape[-1])).reshape(arr.shape)
        out = predict(model, x)
    else:
        series = arr if norm is None else norm.transform(arr)
        out = predict_series(model, series)
    return out if norm is None else norm.inverse_value(out)


def forecast_stream_window(model: TrainedModel, window: npt.ArrayLike, sensor_id: str) -> npt.NDArray[np.float32]:
    """``forecast`` of a sensor's streamed window ``[T, F]`` -> ``[T - l_s]``, as every model backend serves it.

    Raises:
        DataError: the window is not ``[T, F]`` with the model's feature count (naming the sensor).
    """
    arr = np.asarray(window, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != model.spec.n_features:
        raise DataError(
            f"sensor {sensor_id}: window of shape {arr.shape} does not fit the model's {model.spec.n_features} features"
        )
    return forecast(model, arr)


def _pip_requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


#: MLflow's warning that ``predict``'s hints give no signature: that is by design. The
#: forecaster takes windows ``[N, l_s, F]`` or a series ``[T, F]``, which no one signature
#: describes (see ``ForecasterModel.predict``).
_NO_SIGNATURE_NOTICE = "Failed to infer model signature: Type hint"


def save_pyfunc(model: TrainedModel, path: str | Path) -> Path:
    """Write ``model`` as an MLflow pyfunc model directory at ``path`` (must not exist yet).

    Requirements are pinned from the running environment rather than inferred, which
    would load the model in a subprocess.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model(model, Path(tmp) / "forecaster")
        with muted_log_messages("mlflow.pyfunc", _NO_SIGNATURE_NOTICE):
            mlflow.pyfunc.save_model(
                path,
                python_model=str(_MODEL_CODE),
                artifacts={ARTIFACT_KEY: str(model_dir)},
                pip_requirements=_pip_requirements(),
            )
    return path


def log_pyfunc(client: MlflowClient, run_id: str, model: TrainedModel) -> str:
    """Log ``model`` as a pyfunc model under ``<run artifacts>/model``; returns that artifact URI.

    Uses the explicit client (no global ``mlflow.set_tracking_uri``), so it can log to a
    run that already finished, e.g. the best trial of a sweep.
    """
    with tempfile.TemporaryDirectory() as tmp:
        local = save_pyfunc(model, Path(tmp) / MODEL_ARTIFACT_PATH)
        client.log_artifacts(run_id, str(local), MODEL_ARTIFACT_PATH)
    return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"


def load_forecaster(model_uri: str) -> TrainedModel:
    """The ``TrainedModel`` inside a logged pyfunc model (``models:/...``, ``runs:/...`` or a path)."""
    wrapper = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    if not isinstance(wrapper, ForecasterModel):
        raise DataError(f"{model_uri} is not a pdm-ray forecaster (found {type(wrapper).__name__})")
    return wrapper.model
