"""When to retrain: five triggers, per-trigger cooldowns and a global cap, as pure functions.

State is data (optax style): ``init_state() -> PolicyState``, then
``evaluate(cfg, state, observation, now) -> (state, decisions)`` and, when the caller's
retrain finishes, ``record_outcome(state, sensor, outcome) -> state``. Nothing here runs a
retrain, reads a clock or touches storage; the caller (a sensor or fleet actor) does, and
persists ``state.to_dict()`` as JSON.

Triggers, checked in this order for the observation's sensor:

* ``manual``: a request in the observation. Fires unless the cap is reached; it has no
  cooldown and cannot be disabled, because a person asked for it.
* ``degradation``: at least ``min_points`` recent forecast errors whose mean exceeds
  ``factor`` x the production model's validation error.
* ``drift``: a drift check reached ``min_severity``.
* ``quality``: the data-quality status (``pdm_ray.data.quality.QualityStatus``) has been
  ``poor`` or ``critical`` in every observation that reported one for at least
  ``duration_s`` (an observation without a status keeps the clock running; a better status
  stops it).
* ``schedule``: the production model is older than ``max_age_s``.

For each trigger whose condition holds there is one ``Decision``: ``suppressed_cooldown``
when the same trigger fired for this sensor less than its ``cooldown_s`` ago (the cooldown
starts when it fires, whatever the outcome, so a failing retrain is not retried in a tight
loop), else ``suppressed_cap`` when ``max_concurrent`` retrains are in flight or this
sensor's own retrain is (one retrain per sensor at a time, so after one trigger fires the
others in the same evaluation are suppressed this way), else ``fire``. The cap counts the
retrains in flight across every sensor in the state: share one state, e.g. in the fleet
supervisor, for a fleet-wide cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pdm_ray.config import RetrainingSettings
from pdm_ray.data.quality import QualityStatus
from pdm_ray.drift.results import Severity
from pdm_ray.errors import DataError, RetrainingError
from pdm_ray.ids import validate_sensor_id

Evidence = Mapping[str, float | int | str]


class Trigger(Enum):
    """Why a retrain was considered."""

    DRIFT = "drift"
    DEGRADATION = "degradation"
    QUALITY = "quality"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class DecisionKind(Enum):
    """What the policy decided for a trigger whose condition held."""

    FIRE = "fire"
    SUPPRESSED_COOLDOWN = "suppressed_cooldown"
    SUPPRESSED_CAP = "suppressed_cap"


class Outcome(Enum):
    """How a fired retrain ended (``pending`` until the caller reports it)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True)
class Observation:
    """What the caller knows about one sensor at evaluation time; None means "not reported".

    Attributes:
        sensor: the sensor id.
        drift_severity: severity of the latest drift check.
        rolling_error: mean forecast error over the last ``rolling_points`` points.
        rolling_points: how many points ``rolling_error`` averages.
        validation_error: the production model's error on its validation split.
        quality: the data-quality status (``pdm_ray.data.quality``); poor and critical count as poor.
        model_trained_at: when the production model was trained (seconds, same clock as ``now``).
        manual_request: a manual retrain request (who or why); None when there is none.
    """

    sensor: str
    drift_severity: Severity | None = None
    rolling_error: float | None = None
    rolling_points: int = 0
    validation_error: float | None = None
    quality: QualityStatus | None = None
    model_trained_at: float | None = None
    manual_request: str | None = None

    def __post_init__(self) -> None:
        validate_sensor_id(self.sensor)
        for name in ("rolling_error", "validation_error"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise DataError(f"observation {name} must be finite and >= 0, got {value!r} (sensor {self.sensor})")
        if self.model_trained_at is not None and not math.isfinite(self.model_trained_at):
            raise DataError(f"observation model_trained_at must be finite, got {self.model_trained_at!r}")
        if self.rolling_points < 0:
            raise DataError(f"observation rolling_points must be >= 0, got {self.rolling_points}")
        if self.quality is not None and not isinstance(self.quality, QualityStatus):
            raise DataError(f"observation quality must be a QualityStatus, got {self.quality!r}")


@dataclass(frozen=True)
class Decision:
    """The policy's decision for one trigger whose condition held.

    Attributes:
        time: evaluation time (seconds).
        sensor: the sensor id.
        trigger: the trigger.
        decision: fire, or why it was suppressed.
        evidence: the numbers and labels the decision rests on (JSON-serializable).
    """

    time: float
    sensor: str
    trigger: Trigger
    decision: DecisionKind
    evidence: Evidence

    @property
    def fired(self) -> bool:
        """Whether the caller should start a retrain."""
        return self.decision is DecisionKind.FIRE


@dataclass(frozen=True)
class InFlight:
    """A fired retrain whose outcome has not been recorded yet."""

    trigger: Trigger
    started_at: float


@dataclass(frozen=True)
class PolicyState:
    """Everything the policy remembers; replaced, never mutated, by ``evaluate``.

    Attributes:
        last_fired: sensor -> trigger -> time it last fired (starts its cooldown).
        poor_since: sensor -> time its quality status became poor or critical.
        in_flight: sensor -> the retrain running for it.
    """

    last_fired: Mapping[str, Mapping[Trigger, float]] = field(default_factory=dict)
    poor_since: Mapping[str, float] = field(default_factory=dict)
    in_flight: Mapping[str, InFlight] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-compatible nested dicts of strings and floats."""
        return {
            "last_fired": {s: {t.value: at for t, at in fired.items()} for s, fired in self.last_fired.items()},
            "poor_since": dict(self.poor_since),
            "in_flight": {
                s: {"trigger": f.trigger.value, "started_at": f.started_at} for s, f in self.in_flight.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyState:
        """Rebuild a state from ``to_dict`` output.

        Raises:
            DataError: a key, trigger name, sensor id or time is missing or invalid.
        """
        try:
            return cls(
                last_fired={
                    validate_sensor_id(s): {Trigger(t): _time(at) for t, at in fired.items()}
                    for s, fired in data["last_fired"].items()
                },
                poor_since={validate_sensor_id(s): _time(at) for s, at in data["poor_since"].items()},
                in_flight={
                    validate_sensor_id(s): InFlight(Trigger(f["trigger"]), _time(f["started_at"]))
                    for s, f in data["in_flight"].items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"invalid retraining policy state: {type(exc).__name__}: {exc}") from exc


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"time must be a finite number, got {value!r}")
    return float(value)


def init_state() -> PolicyState:
    """An empty state: nothing fired, nothing in flight."""
    return PolicyState()


def _conditions(
    cfg: RetrainingSettings, obs: Observation, poor_since: float | None, now: float
) -> list[tuple[Trigger, dict[str, float | int | str]]]:
    """``(trigger, evidence)`` for every enabled trigger whose condition holds, in priority order."""
    found: list[tuple[Trigger, dict[str, float | int | str]]] = []
    if obs.manual_request is not None:
        found.append((Trigger.MANUAL, {"request": obs.manual_request}))
    deg = cfg.degradation
    if (
        deg.enabled
        and obs.rolling_error is not None
        and obs.validation_error is not None
        and obs.rolling_points >= deg.min_points
        and obs.rolling_error > deg.factor * obs.validation_error
    ):
        evidence: dict[str, float | int | str] = {
            "rolling_error": obs.rolling_error,
            "validation_error": obs.validation_error,
            "factor": deg.factor,
            "points": obs.rolling_points,
        }
        if obs.validation_error > 0:
            evidence["ratio"] = obs.rolling_error / obs.validation_error
        found.append((Trigger.DEGRADATION, evidence))
    drift = cfg.drift
    if drift.enabled and obs.drift_severity is not None and obs.drift_severity >= Severity(drift.min_severity):
        found.append((Trigger.DRIFT, {"severity": obs.drift_severity.value, "min_severity": drift.min_severity}))
    quality = cfg.quality
    if quality.enabled and poor_since is not None and now - poor_since >= quality.duration_s:
        found.append(
            (
                Trigger.QUALITY,
                {
                    "status": obs.quality.label if obs.quality is not None else "unreported",
                    "poor_since": poor_since,
                    "poor_for_s": now - poor_since,
                    "duration_s": quality.duration_s,
                },
            )
        )
    schedule = cfg.schedule
    if schedule.enabled and obs.model_trained_at is not None and now - obs.model_trained_at > schedule.max_age_s:
        found.append((Trigger.SCHEDULE, {"model_age_s": now - obs.model_trained_at, "max_age_s": schedule.max_age_s}))
    return found


def _cooldown_s(cfg: RetrainingSettings, trigger: Trigger) -> float | None:
    """The trigger's cooldown; None for manual requests, which have none."""
    if trigger is Trigger.MANUAL:
        return None
    return {
        Trigger.DRIFT: cfg.drift.cooldown_s,
        Trigger.DEGRADATION: cfg.degradation.cooldown_s,
        Trigger.QUALITY: cfg.quality.cooldown_s,
        Trigger.SCHEDULE: cfg.schedule.cooldown_s,
    }[trigger]


def evaluate(
    cfg: RetrainingSettings, state: PolicyState, observation: Observation, now: float
) -> tuple[PolicyState, list[Decision]]:
    """Decide, for one sensor's observation, which triggers fire (see the module docstring).

    Args:
        cfg: the retraining settings.
        state: the current policy state (not modified).
        observation: what is known about the sensor now.
        now: evaluation time in seconds (any clock, the same for every call).

    Returns:
        The new state and one ``Decision`` per trigger whose condition held, in priority
        order (manual, degradation, drift, quality, schedule); at most one fires.

    Raises:
        DataError: ``now`` is not finite.
    """
    if not math.isfinite(now):
        raise DataError(f"evaluation time must be finite, got {now!r}")
    sensor = observation.sensor
    poor_since = dict(state.poor_since)
    if observation.quality is not None and observation.quality >= QualityStatus.POOR:
        poor_since.setdefault(sensor, now)
    elif observation.quality is not None:
        poor_since.pop(sensor, None)

    last_fired = {s: dict(fired) for s, fired in state.last_fired.items()}
    in_flight = dict(state.in_flight)
    decisions = []
    for trigger, evidence in _conditions(cfg, observation, poor_since.get(sensor), now):
        fired_at = last_fired.get(sensor, {}).get(trigger)
        cooldown = _cooldown_s(cfg, trigger)
        if cooldown is not None and fired_at is not None and now - fired_at < cooldown:
            kind = DecisionKind.SUPPRESSED_COOLDOWN
            evidence = {**evidence, "cooldown_s": cooldown, "cooldown_left_s": cooldown - (now - fired_at)}
        elif sensor in in_flight or len(in_flight) >= cfg.max_concurrent:
            kind = DecisionKind.SUPPRESSED_CAP
            evidence = {**evidence, "in_flight": len(in_flight), "max_concurrent": cfg.max_concurrent}
            if sensor in in_flight:
                evidence["sensor_in_flight"] = in_flight[sensor].trigger.value
        else:
            kind = DecisionKind.FIRE
            last_fired.setdefault(sensor, {})[trigger] = now
            in_flight[sensor] = InFlight(trigger, now)
        decisions.append(Decision(now, sensor, trigger, kind, evidence))
    new_state = PolicyState(last_fired=last_fired, poor_since=poor_since, in_flight=in_flight)
    return new_state, decisions


def record_outcome(state: PolicyState, sensor: str, outcome: Outcome) -> PolicyState:
    """Close ``sensor``'s in-flight retrain, freeing its place under the cap.

    Raises:
        InvalidChannelError: ``sensor`` is not a valid id.
        RetrainingError: no retrain is in flight for ``sensor``, or ``outcome`` is ``pending``.
    """
    validate_sensor_id(sensor)
    if outcome is Outcome.PENDING:
        raise RetrainingError(f"sensor {sensor}: an outcome must be succeeded, rejected or failed, not pending")
    if sensor not in state.in_flight:
        raise RetrainingError(f"sensor {sensor}: no retrain in flight to record an outcome for")
    in_flight = {s: f for s, f in state.in_flight.items() if s != sensor}
    return PolicyState(last_fired=state.last_fired, poor_since=state.poor_since, in_flight=in_flight)
