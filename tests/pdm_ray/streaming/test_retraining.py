import dataclasses
from pathlib import Path

import pytest

from pdm_ray.config import RetrainingSettings
from pdm_ray.data.quality import QualityStatus
from pdm_ray.drift.results import Severity
from pdm_ray.errors import DataError
from pdm_ray.retraining import DecisionKind, Trigger, evaluate, init_state
from pdm_ray.streaming.retraining import load_policy_state, observation, save_policy_state
from pdm_ray.streaming.sensor import Scoring, SensorStatus

STATUS = SensorStatus(
    sensor_id="A-2",
    last_seq=9,
    last_timestamp=99.0,
    n_features=2,
    readings=100,
    batches=10,
    duplicates=0,
    rejected=0,
    buffered=100,
    scored=95,
    events=0,
    scoring=Scoring.SCORING,
    scoring_detail="",
    rolling_mse=0.5,
    rolling_points=95,
    drift=True,
    drift_severity="high",
    quality="poor",
    quality_reasons=("noise",),
    digest="x",
)


def test_observation_carries_status_and_model_facts() -> None:
    obs = observation(STATUS, validation_mse=0.1, model_trained_at=1000.0, manual_request="asked")
    assert obs.sensor == "A-2" and obs.drift_severity is Severity.HIGH and obs.quality is QualityStatus.POOR
    assert (obs.rolling_error, obs.rolling_points, obs.validation_error) == (0.5, 95, 0.1)
    assert (obs.model_trained_at, obs.manual_request) == (1000.0, "asked")
    quiet = observation(
        dataclasses.replace(STATUS, drift_severity=None, quality=None, rolling_mse=None, rolling_points=0)
    )
    assert (quiet.drift_severity, quiet.quality, quiet.rolling_error, quiet.validation_error) == (
        None,
        None,
        None,
        None,
    )


def test_a_drifting_sensor_fires_the_drift_trigger() -> None:
    cfg = RetrainingSettings()
    _, decisions = evaluate(cfg, init_state(), observation(STATUS), now=10.0)
    assert [(d.trigger, d.decision) for d in decisions] == [(Trigger.DRIFT, DecisionKind.FIRE)]


def test_policy_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p" / "retraining_policy.json"
    assert load_policy_state(path) == init_state()
    state, _ = evaluate(RetrainingSettings(), init_state(), observation(STATUS), now=10.0)
    save_policy_state(path, state)
    assert load_policy_state(path) == state
    assert [p.name for p in path.parent.iterdir()] == ["retraining_policy.json"]
    path.write_text("{not json")
    with pytest.raises(DataError, match="not a readable retraining policy state"):
        load_policy_state(path)
