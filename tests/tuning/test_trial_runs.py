"""``TrialRunsCallback`` on a real MLflow store (SQLite under tmp), driven as Tune drives it, without Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow.tracking import MlflowClient

from pdm_ray.tracking.runs import connect
from tuning.sweep import TrialRunsCallback


@dataclass(eq=False)
class FakeTrial:
    """What the callback reads of a Tune ``Trial``: name, id, config and status."""

    name: str
    status: str = "RUNNING"
    config: dict[str, Any] = field(default_factory=lambda: {"channel": "T-1", "units": 8})

    @property
    def trial_id(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


class Clock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _callback(uri: str, flush_seconds: float = 5.0, clock: Clock | None = None) -> TrialRunsCallback:
    connect(uri, "pdm-ray")  # the sweep creates the store and experiment first
    callback = TrialRunsCallback(
        tracking_uri=uri, experiment_name="pdm-ray", flush_seconds=flush_seconds, clock=clock or Clock()
    )
    callback.setup()
    return callback


def _steps(uri: str, run_id: str) -> list[int]:
    return [m.step for m in MlflowClient(uri).get_metric_history(run_id, "val_loss")]


def test_a_first_epoch_slower_than_the_flush_interval_is_written_when_it_arrives(mlflow_uri: str) -> None:
    clock = Clock()
    callback = _callback(mlflow_uri, flush_seconds=10.0, clock=clock)
    trial = FakeTrial("t-1")
    callback.log_trial_start(trial)
    run_id = callback._trial_runs[trial]
    clock.now = 30.0  # the first epoch (compiles included) takes longer than flush_seconds
    callback.log_trial_result(1, trial, {"training_iteration": 1, "val_loss": 0.5})
    assert _steps(mlflow_uri, run_id) == [1]
    clock.now = 39.0  # a fast epoch, 9 s after the last write, waits for the next write
    callback.log_trial_result(2, trial, {"training_iteration": 2, "val_loss": 0.4})
    assert _steps(mlflow_uri, run_id) == [1]
    clock.now = 40.0  # 10 s after the last write: epochs 2 and 3 go in one batch
    callback.log_trial_result(3, trial, {"training_iteration": 3, "val_loss": 0.3})
    assert _steps(mlflow_uri, run_id) == [1, 2, 3]
    callback.log_trial_result(4, trial, {"training_iteration": 4, "val_loss": 0.2})
    assert _steps(mlflow_uri, run_id) == [1, 2, 3]
    callback.log_trial_end(trial)  # the end writes what is pending, whatever the clock says
    assert _steps(mlflow_uri, run_id) == [1, 2, 3, 4]
    assert MlflowClient(mlflow_uri).get_run(run_id).info.status == "FINISHED"


def test_an_experiment_stopped_mid_trial_ends_the_open_runs_killed_and_lists_the_unfinished(mlflow_uri: str) -> None:
    """Tune's Ctrl-C stop marks a running trial TERMINATED without ending it; pending trials never start."""
    callback = _callback(mlflow_uri)
    done, running, waiting = (
        FakeTrial("done", "TERMINATED"),
        FakeTrial("running", "TERMINATED"),
        FakeTrial("waiting", "PENDING"),
    )
    for trial in (done, running):
        callback.log_trial_start(trial)
    callback.log_trial_result(1, running, {"training_iteration": 1, "val_loss": 0.5})
    callback.log_trial_end(done)
    callback.on_experiment_end([done, running, waiting])
    assert callback.unfinished == ["running", "waiting"]
    client = MlflowClient(mlflow_uri)
    assert client.get_run(callback._trial_runs[done]).info.status == "FINISHED"
    assert client.get_run(callback._trial_runs[running]).info.status == "KILLED"
    assert _steps(mlflow_uri, callback._trial_runs[running]) == [1]  # its last epoch was written first
