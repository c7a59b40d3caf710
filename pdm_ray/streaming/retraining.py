"""From a sensor's status to the retraining policy (``pdm_ray.retraining``), and the policy's state file.

The Fleet gathers every sensor's ``SensorStatus``, turns each into an ``Observation`` with
``observation`` (adding what the model host knows: the production model's validation error
and age) and feeds the pure policy; the policy state lives in one JSON file, replaced
atomically, so a restarted Fleet keeps its cooldowns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pdm_ray.data.quality import QualityStatus
from pdm_ray.drift.results import Severity
from pdm_ray.errors import DataError
from pdm_ray.retraining import Observation, PolicyState, init_state
from pdm_ray.streaming.sensor import SensorStatus
from pdm_ray.streaming.wal import fsync_dir

POLICY_FILE = "retraining_policy.json"


def observation(
    status: SensorStatus,
    validation_mse: float | None = None,
    model_trained_at: float | None = None,
    manual_request: str | None = None,
) -> Observation:
    """What the policy needs to know about one sensor.

    Args:
        status: the sensor's status (drift severity, quality, rolling forecast MSE).
        validation_mse: the production model's validation MSE, in squared sensor units
            like ``status.rolling_mse``; None without a model.
        model_trained_at: when that model was trained (seconds since the epoch).
        manual_request: why someone asked for a retrain, if they did.
    """
    return Observation(
        sensor=status.sensor_id,
        drift_severity=None if status.drift_severity is None else Severity(status.drift_severity),
        rolling_error=status.rolling_mse,
        rolling_points=status.rolling_points,
        validation_error=validation_mse,
        quality=None if status.quality is None else QualityStatus[status.quality.upper()],
        model_trained_at=model_trained_at,
        manual_request=manual_request,
    )


def load_policy_state(path: str | Path) -> PolicyState:
    """The policy state stored at ``path``; a fresh one when there is no file.

    Raises:
        DataError: the file is not a valid policy state.
    """
    path = Path(path)
    if not path.exists():
        return init_state()
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable retraining policy state: {exc}") from exc
    return PolicyState.from_dict(data)


def save_policy_state(path: str | Path, state: PolicyState) -> None:
    """Write ``state`` as JSON atomically (temp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as fh:
        json.dump(state.to_dict(), fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
