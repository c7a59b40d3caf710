"""A registered version's validation error in the sensor's own units.

Training reports ``val_loss``, the validation MSE on normalized data; a stream's forecast
errors are in sensor units (the forecaster inverts its normalizer). To compare the two,
the normalized RMSE is scaled back with the model's normalizer for channel 0, which is read
from the ``model.json`` logged with the version (a few hundred bytes, no parameters).
``val_loss`` averages all ``n_predictions`` steps ahead, so against a stream's one-step
errors the comparison errs on the lenient side.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
from mlflow.exceptions import MlflowException

from pdm_ray.data.normalize import Normalizer
from pdm_ray.errors import DataError, TrackingError
from pdm_ray.tracking.runs import Tracking, quiet_downloads


def rmse_in_units(doc: dict[str, Any]) -> float | None:
    """``sqrt(val_loss) * scale[0]`` of a ``model.json`` document; None without a finite ``val_loss``.

    Raises:
        DataError: the document's normalizer is malformed.
    """
    val_loss = doc.get("val_loss")
    if not isinstance(val_loss, (int, float)) or not math.isfinite(val_loss) or val_loss < 0:
        return None
    normalizer = doc.get("normalizer")
    scale = 1.0 if normalizer is None else Normalizer.from_dict(normalizer).scale[0]
    return math.sqrt(val_loss) * scale


def validation_rmse(tracking: Tracking, name: str, version: str) -> float | None:
    """The validation RMSE of registered ``name`` version ``version``, in the sensor's units.

    Returns None when the version records no finite validation loss.

    Raises:
        TrackingError: the version or its ``model.json`` cannot be read.
        DataError: its ``model.json`` is not valid JSON or has a malformed normalizer.
    """
    from pdm_ray.models.persistence import MODEL_FILE  # the model stack: on first use only
    from pdm_ray.tracking.pyfunc import ARTIFACT_KEY

    try:
        source = tracking.client.get_model_version(name, version).source
        with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/artifacts/{ARTIFACT_KEY}/{MODEL_FILE}", dst_path=tmp
            )
            text = Path(local).read_text()
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"reading {MODEL_FILE} of {name} version {version} at {tracking.uri}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{MODEL_FILE} of {name} version {version} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{MODEL_FILE} of {name} version {version} is not a JSON object")
    return rmse_in_units(doc)
