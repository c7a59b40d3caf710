"""The Fleet drives the retraining policy: a real retrain (Tune + MLflow on SQLite) as a Ray task."""

from pathlib import Path

import numpy as np
import pytest
import ray

from actors.fleet import fleet_handle
from actors.forecaster import ModelHostForecaster
from actors.model_host import model_host_handle
from pdm_ray.config import DataSettings, SweepSettings, TrackingSettings, TrainSettings
from pdm_ray.retraining import (
    Decision,
    DecisionKind,
    Outcome,
    RetrainingHistory,
    Trigger,
    evaluate,
    history_path,
    init_state,
)
from pdm_ray.retraining import Observation as PolicyObservation
from pdm_ray.streaming import Batch, Scoring
from pdm_ray.streaming.retraining import POLICY_FILE, load_policy_state, save_policy_state

from .conftest import sine_batches, small_settings

pytestmark = pytest.mark.ray

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _tiny_data(root: Path) -> Path:
    """T-1 cut to 300 train / 200 test steps, no labels."""
    for split, n in (("train", 300), ("test", 200)):
        (root / split).mkdir(parents=True)
        np.save(root / split / "T-1.npy", np.load(SAMPLE / split / "T-1.npy")[:n])
    return root


def _batches(values: np.ndarray, size: int, first_seq: int, first_index: int) -> list[Batch]:
    return [
        Batch(
            first_seq + i,
            first_index + np.arange(s, s + len(values[s : s + size]), dtype=np.float64),
            values[s : s + size],
        )
        for i, s in enumerate(range(0, len(values), size))
    ]


@pytest.mark.slow
def test_a_manual_request_retrains_promotes_and_the_sensor_scores_with_it(
    ray_actors: None, tmp_path: Path, mlflow_uri: str
) -> None:
    data_dir = _tiny_data(tmp_path / "data")
    settings = small_settings(tmp_path / "home").model_copy(
        update={
            "data": DataSettings(dir=data_dir),
            "train": TrainSettings(epochs=2, batch_size=32, learning_rate=1e-2),
            "sweep": SweepSettings(num_samples=1, max_concurrent_trials=1),
            "tracking": TrackingSettings(uri=mlflow_uri),
        }
    )
    fleet = fleet_handle(settings, ModelHostForecaster(model_host_handle(settings)), name="fleet-r")
    test = np.load(data_dir / "test" / "T-1.npy").astype(np.float32)
    acks = ray.get([fleet.ingest.remote("T-1", b) for b in _batches(test[:100], 25, 0, 0)])
    assert acks[-1].scoring == Scoring.NO_MODEL  # nothing registered yet

    ray.get(fleet.request_retrain.remote("T-1", "operator asked"))
    decisions = ray.get(fleet.check_retraining.remote())
    fired = [d for d in decisions if d.fired]
    assert [(d.sensor, d.trigger) for d in fired] == [("T-1", Trigger.MANUAL)]
    assert load_policy_state(settings.home / POLICY_FILE).in_flight.keys() == {"T-1"}

    (entry,) = ray.get(fleet.settle_retrains.remote(wait=True))
    assert (entry.outcome, entry.model_version, entry.trigger) == (Outcome.SUCCEEDED, "1", Trigger.MANUAL)
    assert load_policy_state(settings.home / POLICY_FILE).in_flight == {}
    history = ray.get(fleet.retraining_history.remote("T-1"))
    assert [(e.decision, e.outcome) for e in history if e.trigger is Trigger.MANUAL] == [
        (DecisionKind.FIRE, Outcome.SUCCEEDED)
    ]

    acks = ray.get([fleet.ingest.remote("T-1", b) for b in _batches(test[100:], 25, 4, 100)])
    assert acks[-1].scoring == Scoring.SCORING  # the promoted version serves the stream now
    status = ray.get(fleet.status.remote("T-1"))
    assert status.scored > 0 and status.rolling_mse is not None


def test_a_retrain_lost_with_the_fleet_is_recorded_as_failed(ray_actors: None, tmp_path: Path) -> None:
    settings = small_settings(tmp_path / "home")
    history = RetrainingHistory(history_path(settings.home))
    state, (decision,) = evaluate(settings.retraining, init_state(), PolicyObservation("B-7", manual_request="x"), 5.0)
    assert isinstance(decision, Decision) and decision.fired
    entry_id = history.record(decision)
    save_policy_state(settings.home / POLICY_FILE, state)  # as a Fleet would have, before it died

    fleet = fleet_handle(settings, name="fleet-l")
    assert ray.get(fleet.check_retraining.remote()) == []
    assert history.get(entry_id).outcome is Outcome.FAILED
    assert load_policy_state(settings.home / POLICY_FILE).in_flight == {}


def test_overlapping_checks_fire_one_retrain_and_settle_it(ray_actors: None, tmp_path: Path) -> None:
    settings = small_settings(tmp_path / "home").model_copy(update={"data": DataSettings(dir=tmp_path / "none")})
    fleet = fleet_handle(settings, name="fleet-o")
    batches = sine_batches(120, 20)
    for batch in batches[3:]:  # the reference is the first 40 readings; then the level moves
        batch.values[:, 0] += 5.0
    ray.get([fleet.ingest.remote("D-1", b) for b in batches])
    assert ray.get(fleet.status.remote("D-1")).drift_severity in ("high", "critical")

    rounds = ray.get([fleet.check_retraining.remote() for _ in range(3)])  # e.g. the timer and two CLI calls
    fired = [d for decisions in rounds for d in decisions if d.fired]
    assert [(d.sensor, d.trigger) for d in fired] == [("D-1", Trigger.DRIFT)]

    (entry,) = ray.get(fleet.settle_retrains.remote(wait=True))  # no data to retrain on: it fails
    assert entry.outcome is Outcome.FAILED
    assert RetrainingHistory(history_path(settings.home)).pending("D-1") == []
    assert load_policy_state(settings.home / POLICY_FILE).in_flight == {}


def test_a_version_registered_before_its_gate_failed_is_reported_with_the_failure() -> None:
    from actors.retrain import RetrainResult, retrain_result
    from tuning.sweep import ChannelBest, SweepResult

    error = "RegistryError: pdm-T-1-lstm: production 1 reads different windows (l_s/n_predictions) than the candidate"
    best = ChannelBest("T-1", {"units": 8}, 0.1, 0.5, 2, 1, "run", "2")
    result = SweepResult("s", "lstm", "parent", "sqlite:///x", (best,), failed={"T-1": error})
    assert retrain_result("T-1", result) == RetrainResult("T-1", "failed", "2", error)
    assert retrain_result("T-1", SweepResult("s", "lstm", "parent", "sqlite:///x", (best,))).outcome == "rejected"
