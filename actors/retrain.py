"""A retrain as a Ray task: the tuning sweep for one sensor, then the promotion gate.

The Fleet launches ``retrain_sensor`` when the retraining policy fires and reads its
``RetrainResult`` later; the task runs ``tuning.sweep.run_sweep([sensor], promote_best=True)``
on the configured data directory, so the new version is registered as ``staging`` and
becomes ``production`` only if the gate (``pdm_ray.tracking.promote``) accepts it. The task
holds no CPU of its own (``num_cpus=0``): the sweep's trials ask for theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import ray

if TYPE_CHECKING:  # the sweep (Tune, MLflow, JAX) loads inside the task
    from tuning.sweep import SweepResult

OutcomeName = Literal["succeeded", "rejected", "failed"]


@dataclass(frozen=True)
class RetrainResult:
    """How one retrain ended.

    Attributes:
        sensor_id: the sensor.
        outcome: ``succeeded`` (promoted to production), ``rejected`` (registered, the gate
            kept the old production) or ``failed`` (no trial finished, or an error).
        model_version: the registered version, when one was made (also when the gate then failed).
        detail: the gate's reason or the error, one line.
    """

    sensor_id: str
    outcome: OutcomeName
    model_version: str | None
    detail: str


@ray.remote(num_cpus=0, max_retries=0)
def retrain_sensor(sensor_id: str, settings: dict[str, Any], data_dir: str) -> RetrainResult:
    """Tune, register and gate a new model for ``sensor_id`` from ``data_dir`` (Telemanom layout)."""
    from pdm_ray.config import Settings
    from pdm_ray.errors import PdmError
    from tuning.sweep import run_sweep

    try:
        result = run_sweep(
            [sensor_id], settings=Settings.model_validate(settings), data_dir=data_dir, promote_best=True
        )
    except PdmError as exc:
        return RetrainResult(sensor_id, "failed", None, f"{type(exc).__name__}: {exc}"[:500])
    return retrain_result(sensor_id, result)


def retrain_result(sensor_id: str, result: SweepResult) -> RetrainResult:
    """How the one-sensor sweep ``result`` ended for ``sensor_id``."""
    error = result.failed.get(sensor_id)
    if not result.channels:
        return RetrainResult(sensor_id, "failed", None, (error or "no trial finished")[:500])
    best = result.channels[0]
    if error is not None:  # registered, then the gate failed: the version exists as staging
        return RetrainResult(sensor_id, "failed", best.version, error[:500])
    if best.decision is None:
        return RetrainResult(sensor_id, "rejected", best.version, "registered as staging; the gate did not run")
    outcome: OutcomeName = "succeeded" if best.decision.promoted else "rejected"
    return RetrainResult(sensor_id, outcome, best.version, best.decision.reason)
