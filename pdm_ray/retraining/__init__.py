"""Retraining: the pure decision policy (five triggers, cooldowns, a cap) and its SQLite history."""

from pdm_ray.retraining.history import HISTORY_FILENAME, HistoryEntry, RetrainingHistory, history_path
from pdm_ray.retraining.policy import (
    Decision,
    DecisionKind,
    InFlight,
    Observation,
    Outcome,
    PolicyState,
    Trigger,
    evaluate,
    init_state,
    record_outcome,
)

__all__ = [
    "HISTORY_FILENAME",
    "Decision",
    "DecisionKind",
    "HistoryEntry",
    "InFlight",
    "Observation",
    "Outcome",
    "PolicyState",
    "RetrainingHistory",
    "Trigger",
    "evaluate",
    "history_path",
    "init_state",
    "record_outcome",
]
