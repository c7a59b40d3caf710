"""Retraining policy: each trigger fires on a crafted sequence and respects its cooldown; the cap; state as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.config import RetrainingSettings
from pdm_ray.data.quality import QualityStatus
from pdm_ray.drift import Severity
from pdm_ray.errors import DataError, InvalidChannelError, RetrainingError
from pdm_ray.retraining import (
    DecisionKind,
    Observation,
    Outcome,
    PolicyState,
    Trigger,
    evaluate,
    init_state,
    record_outcome,
)

HOUR = 3600.0
CFG = RetrainingSettings.model_validate(
    {
        "max_concurrent": 1,
        "drift": {"cooldown_s": HOUR, "min_severity": "high"},
        "degradation": {"cooldown_s": HOUR, "factor": 2.0, "min_points": 10},
        "quality": {"cooldown_s": HOUR, "duration_s": 600.0},
        "schedule": {"cooldown_s": HOUR, "max_age_s": 1000.0},
    }
)

# For each automatic trigger: an observation that satisfies its condition at time `now`.
FIRING: dict[Trigger, Callable[[str], Observation]] = {
    Trigger.DRIFT: lambda s: Observation(s, drift_severity=Severity.CRITICAL),
    Trigger.DEGRADATION: lambda s: Observation(s, rolling_error=3.0, rolling_points=10, validation_error=1.0),
    Trigger.QUALITY: lambda s: Observation(s, quality=QualityStatus.CRITICAL),
    Trigger.SCHEDULE: lambda s: Observation(s, model_trained_at=0.0),
}


def _kinds(decisions) -> list[tuple[Trigger, DecisionKind]]:
    return [(d.trigger, d.decision) for d in decisions]


def _warm_quality(state: PolicyState, sensor: str, at: float) -> PolicyState:
    """Quality has to be poor for a while before the trigger can fire; start its clock at ``at``."""
    state, decisions = evaluate(CFG, state, Observation(sensor, quality=QualityStatus.POOR), at)
    assert decisions == []
    return state


@pytest.mark.parametrize("trigger", list(FIRING))
def test_trigger_fires_and_respects_its_cooldown(trigger: Trigger) -> None:
    state = init_state()
    t0 = 5000.0
    if trigger is Trigger.QUALITY:
        state = _warm_quality(state, "A-1", t0 - 600.0)
    state, decisions = evaluate(CFG, state, FIRING[trigger]("A-1"), t0)
    assert _kinds(decisions) == [(trigger, DecisionKind.FIRE)]
    assert decisions[0].fired and decisions[0].time == t0 and decisions[0].sensor == "A-1"
    state = record_outcome(state, "A-1", Outcome.SUCCEEDED)

    # Within the cooldown (which starts when it fires): suppressed, with the time left.
    state, decisions = evaluate(CFG, state, FIRING[trigger]("A-1"), t0 + HOUR - 1.0)
    assert _kinds(decisions) == [(trigger, DecisionKind.SUPPRESSED_COOLDOWN)]
    assert decisions[0].evidence["cooldown_left_s"] == pytest.approx(1.0)

    # Once the cooldown has passed it fires again.
    state, decisions = evaluate(CFG, state, FIRING[trigger]("A-1"), t0 + HOUR)
    assert _kinds(decisions) == [(trigger, DecisionKind.FIRE)]
    assert state.in_flight["A-1"].trigger is trigger


@pytest.mark.parametrize("trigger", list(FIRING))
def test_disabled_trigger_never_decides(trigger: Trigger) -> None:
    cfg = CFG.model_copy(update={trigger.value: getattr(CFG, trigger.value).model_copy(update={"enabled": False})})
    state = _warm_quality(init_state(), "A-1", 0.0) if trigger is Trigger.QUALITY else init_state()
    state, decisions = evaluate(cfg, state, FIRING[trigger]("A-1"), 5000.0)
    assert decisions == []
    assert state.in_flight == {}


def test_drift_fires_at_or_above_the_configured_severity() -> None:
    for severity, fires in [(Severity.LOW, False), (Severity.MEDIUM, False), (Severity.HIGH, True)]:
        _, decisions = evaluate(CFG, init_state(), Observation("A-1", drift_severity=severity), 0.0)
        assert bool(decisions) is fires
    _, decisions = evaluate(CFG, init_state(), Observation("A-1", drift_severity=Severity.HIGH), 0.0)
    assert decisions[0].evidence == {"severity": "high", "min_severity": "high"}


@pytest.mark.parametrize(
    ("rolling_error", "points", "fires"),
    [(2.0, 10, False), (2.01, 9, False), (2.01, 10, True)],  # strictly above factor x validation, min points
)
def test_degradation_needs_factor_and_points(rolling_error: float, points: int, fires: bool) -> None:
    obs = Observation("A-1", rolling_error=rolling_error, rolling_points=points, validation_error=1.0)
    _, decisions = evaluate(CFG, init_state(), obs, 0.0)
    assert bool(decisions) is fires
    if fires:
        assert decisions[0].evidence["ratio"] == pytest.approx(2.01)


def test_quality_must_stay_poor_for_the_whole_duration() -> None:
    state = init_state()
    poor, critical, fair = (
        Observation("A-1", quality=q) for q in (QualityStatus.POOR, QualityStatus.CRITICAL, QualityStatus.FAIR)
    )
    state, decisions = evaluate(CFG, state, poor, 0.0)
    assert decisions == []
    state, decisions = evaluate(CFG, state, critical, 599.0)
    assert decisions == []
    # A fair status in between restarts the clock.
    state, _ = evaluate(CFG, state, fair, 599.5)
    state, decisions = evaluate(CFG, state, poor, 600.0)
    assert decisions == [] and state.poor_since["A-1"] == 600.0
    # No status reported keeps the clock running.
    state, decisions = evaluate(CFG, state, Observation("A-1"), 1199.0)
    assert decisions == []
    state, decisions = evaluate(CFG, state, Observation("A-1"), 1200.0)
    assert _kinds(decisions) == [(Trigger.QUALITY, DecisionKind.FIRE)]
    assert decisions[0].evidence["poor_for_s"] == 600.0 and decisions[0].evidence["status"] == "unreported"


def test_schedule_fires_only_past_max_age() -> None:
    _, decisions = evaluate(CFG, init_state(), Observation("A-1", model_trained_at=0.0), 1000.0)
    assert decisions == []
    _, decisions = evaluate(CFG, init_state(), Observation("A-1", model_trained_at=0.0), 1000.5)
    assert _kinds(decisions) == [(Trigger.SCHEDULE, DecisionKind.FIRE)]
    assert decisions[0].evidence["model_age_s"] == 1000.5


def test_cap_suppresses_other_sensors_until_an_outcome() -> None:
    state, decisions = evaluate(CFG, init_state(), FIRING[Trigger.DRIFT]("A-1"), 0.0)
    assert decisions[0].fired
    state, decisions = evaluate(CFG, state, FIRING[Trigger.DRIFT]("B-2"), 1.0)
    assert _kinds(decisions) == [(Trigger.DRIFT, DecisionKind.SUPPRESSED_CAP)]
    assert decisions[0].evidence["in_flight"] == 1 and decisions[0].evidence["max_concurrent"] == 1
    # Suppression does not start B-2's cooldown: it fires as soon as A-1's retrain is done.
    state = record_outcome(state, "A-1", Outcome.FAILED)
    state, decisions = evaluate(CFG, state, FIRING[Trigger.DRIFT]("B-2"), 2.0)
    assert _kinds(decisions) == [(Trigger.DRIFT, DecisionKind.FIRE)]


def test_cap_of_two_allows_two_sensors() -> None:
    cfg = CFG.model_copy(update={"max_concurrent": 2})
    state = init_state()
    kinds = []
    for sensor in ("A-1", "B-2", "C-3"):
        state, decisions = evaluate(cfg, state, FIRING[Trigger.SCHEDULE](sensor), 5000.0)
        kinds.append(decisions[0].decision)
    assert kinds == [DecisionKind.FIRE, DecisionKind.FIRE, DecisionKind.SUPPRESSED_CAP]
    assert set(state.in_flight) == {"A-1", "B-2"}


def test_one_retrain_per_sensor_and_priority_order() -> None:
    obs = Observation(
        "A-1",
        drift_severity=Severity.CRITICAL,
        rolling_error=5.0,
        rolling_points=50,
        validation_error=1.0,
        model_trained_at=0.0,
    )
    state, decisions = evaluate(CFG, init_state(), obs, 5000.0)
    assert _kinds(decisions) == [
        (Trigger.DEGRADATION, DecisionKind.FIRE),
        (Trigger.DRIFT, DecisionKind.SUPPRESSED_CAP),
        (Trigger.SCHEDULE, DecisionKind.SUPPRESSED_CAP),
    ]
    assert decisions[1].evidence["sensor_in_flight"] == "degradation"
    assert set(state.last_fired["A-1"]) == {Trigger.DEGRADATION}


def test_manual_ignores_cooldowns_but_not_the_cap() -> None:
    manual = Observation("A-1", manual_request="operator")
    state, decisions = evaluate(CFG, init_state(), manual, 0.0)
    assert _kinds(decisions) == [(Trigger.MANUAL, DecisionKind.FIRE)]
    assert decisions[0].evidence == {"request": "operator"}
    state = record_outcome(state, "A-1", Outcome.SUCCEEDED)
    state, decisions = evaluate(CFG, state, manual, 1.0)  # no cooldown for manual requests
    assert _kinds(decisions) == [(Trigger.MANUAL, DecisionKind.FIRE)]
    state = record_outcome(state, "A-1", Outcome.SUCCEEDED)
    state, decisions = evaluate(CFG, state, manual, 0.5)  # even when the clock steps back
    assert _kinds(decisions) == [(Trigger.MANUAL, DecisionKind.FIRE)]
    state = record_outcome(state, "A-1", Outcome.SUCCEEDED)
    state, _ = evaluate(CFG, state, FIRING[Trigger.DRIFT]("B-2"), 2.0)
    state, decisions = evaluate(CFG, state, manual, 3.0)
    assert _kinds(decisions) == [(Trigger.MANUAL, DecisionKind.SUPPRESSED_CAP)]


def test_evaluate_does_not_modify_its_input() -> None:
    state = _warm_quality(init_state(), "A-1", 0.0)
    before = state.to_dict()
    evaluate(CFG, state, FIRING[Trigger.DRIFT]("A-1"), 10.0)
    assert state.to_dict() == before


observations = st.builds(
    Observation,
    sensor=st.sampled_from(["A-1", "B-2", "T-1"]),
    drift_severity=st.none() | st.sampled_from(list(Severity)),
    rolling_error=st.none() | st.floats(0, 5),
    rolling_points=st.integers(0, 20),
    validation_error=st.none() | st.floats(0, 2),
    quality=st.none() | st.sampled_from(list(QualityStatus)),
    model_trained_at=st.none() | st.floats(0, 3000),
    manual_request=st.none() | st.just("ops"),
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(observations, st.floats(0, 1000), st.booleans()), min_size=1, max_size=15))
def test_state_round_trips_through_json_and_cap_holds(steps) -> None:
    cfg = CFG.model_copy(update={"max_concurrent": 2})
    state, now = init_state(), 0.0
    for obs, dt, finish in steps:
        now += dt
        state, decisions = evaluate(cfg, state, obs, now)
        assert sum(d.fired for d in decisions) <= 1
        assert len(state.in_flight) <= cfg.max_concurrent
        if finish and obs.sensor in state.in_flight:
            state = record_outcome(state, obs.sensor, Outcome.SUCCEEDED)
        restored = PolicyState.from_dict(json.loads(json.dumps(state.to_dict())))
        assert restored == state
        state = restored


def test_record_outcome_errors() -> None:
    with pytest.raises(RetrainingError, match="sensor A-1: no retrain in flight"):
        record_outcome(init_state(), "A-1", Outcome.SUCCEEDED)
    state, _ = evaluate(CFG, init_state(), FIRING[Trigger.DRIFT]("A-1"), 0.0)
    with pytest.raises(RetrainingError, match="not pending"):
        record_outcome(state, "A-1", Outcome.PENDING)
    with pytest.raises(InvalidChannelError):
        record_outcome(state, "../etc", Outcome.FAILED)


def test_bad_observations_and_state_are_named() -> None:
    with pytest.raises(InvalidChannelError):
        Observation("bad id")
    with pytest.raises(DataError, match="rolling_error must be finite and >= 0, got nan"):
        Observation("A-1", rolling_error=float("nan"))
    with pytest.raises(DataError, match="quality must be a QualityStatus"):
        Observation("A-1", quality="poor")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="evaluation time must be finite"):
        evaluate(CFG, init_state(), Observation("A-1"), float("inf"))
    with pytest.raises(DataError, match="invalid retraining policy state"):
        PolicyState.from_dict({"last_fired": {"A-1": {"nope": 1.0}}, "poor_since": {}, "in_flight": {}})
    with pytest.raises(DataError, match="invalid retraining policy state"):
        PolicyState.from_dict({"last_fired": {}})
