"""``RetrainingHistory``: every retraining decision and its outcome, in SQLite.

One table, ``retraining``: ``id, time, sensor, trigger, evidence (JSON), decision, outcome,
outcome_time, model_version``. By convention the file is ``PDM_HOME/retraining.db``
(``history_path``). Several processes may share it: the journal is WAL (readers never block
the writer) and each connection waits up to ``busy_timeout_s`` for a lock; every write is
one short ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from pdm_ray.errors import DataError, RetrainingError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.retraining.policy import Decision, DecisionKind, Outcome, Trigger

logger = logging.getLogger(__name__)

HISTORY_FILENAME = "retraining.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retraining (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    sensor TEXT NOT NULL,
    trigger TEXT NOT NULL,
    evidence TEXT NOT NULL,
    decision TEXT NOT NULL,
    outcome TEXT,
    outcome_time REAL,
    model_version TEXT
);
CREATE INDEX IF NOT EXISTS retraining_sensor ON retraining (sensor, id);
"""
_COLUMNS = "id, time, sensor, trigger, evidence, decision, outcome, outcome_time, model_version"


def history_path(home: Path) -> Path:
    """The conventional history file under ``PDM_HOME``."""
    return Path(home) / HISTORY_FILENAME


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded decision.

    Attributes:
        id: row id, increasing in recording order.
        time: decision time (seconds).
        sensor: the sensor id.
        trigger: the trigger.
        evidence: the decision's evidence.
        decision: fire or why it was suppressed.
        outcome: ``pending`` for a fired retrain until updated; None for suppressed decisions.
        outcome_time: when the outcome was recorded, None while pending or suppressed.
        model_version: the model version the retrain produced, when known.
    """

    id: int
    time: float
    sensor: str
    trigger: Trigger
    evidence: dict[str, Any]
    decision: DecisionKind
    outcome: Outcome | None
    outcome_time: float | None
    model_version: str | None


def _entry(row: tuple[Any, ...]) -> HistoryEntry:
    id_, time, sensor, trigger, evidence, decision, outcome, outcome_time, model_version = row
    return HistoryEntry(
        id=id_,
        time=time,
        sensor=sensor,
        trigger=Trigger(trigger),
        evidence=json.loads(evidence),
        decision=DecisionKind(decision),
        outcome=None if outcome is None else Outcome(outcome),
        outcome_time=outcome_time,
        model_version=model_version,
    )


class RetrainingHistory:
    """The retraining log at ``path`` (created with its parent directory if missing).

    Args:
        path: the SQLite file.
        busy_timeout_s: how long a write waits for another process's lock.

    Raises:
        RetrainingError: the file cannot be opened as a SQLite database.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise RetrainingError(f"{self.path}: cannot open the retraining history: {exc}") from exc
        if mode != "wal":
            logger.warning("%s: journal mode is %s, not wal; concurrent writers may wait longer", self.path, mode)

    def record(self, decision: Decision, outcome: Outcome | None = None, model_version: str | None = None) -> int:
        """Append ``decision``; returns its id.

        Args:
            decision: the policy's decision.
            outcome: defaults to ``pending`` for a fired decision and None for a suppressed one.
            model_version: the produced model version, if already known.

        Raises:
            DataError: the evidence is not JSON-serializable with finite numbers.
            RetrainingError: an outcome is given for a suppressed decision.
        """
        validate_sensor_id(decision.sensor)
        if outcome is None and decision.fired:
            outcome = Outcome.PENDING
        if outcome is not None and not decision.fired:
            raise RetrainingError(
                f"sensor {decision.sensor}: a {decision.decision.value} decision has no retrain, so no outcome"
            )
        try:
            evidence = json.dumps(dict(decision.evidence), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"sensor {decision.sensor}: evidence is not finite JSON: {exc}") from exc
        row = (
            decision.time,
            decision.sensor,
            decision.trigger.value,
            evidence,
            decision.decision.value,
            None if outcome is None else outcome.value,
            model_version,
        )
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO retraining (time, sensor, trigger, evidence, decision, outcome, model_version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        entry_id = cast(int, cursor.lastrowid)  # always set after an INSERT
        logger.info(
            "sensor %s: retraining %s by %s recorded as #%d",
            decision.sensor,
            decision.decision.value,
            decision.trigger.value,
            entry_id,
        )
        return entry_id

    def update_outcome(
        self, entry_id: int, outcome: Outcome, time: float, model_version: str | None = None
    ) -> HistoryEntry:
        """Set the outcome (and produced model version) of a fired retrain; returns the updated entry.

        Raises:
            DataError: ``time`` is not finite.
            RetrainingError: no entry has ``entry_id``, it was a suppressed decision, or
                ``outcome`` is ``pending``.
        """
        if outcome is Outcome.PENDING:
            raise RetrainingError(f"history entry #{entry_id}: an outcome must be succeeded, rejected or failed")
        if not math.isfinite(time):
            raise DataError(f"history entry #{entry_id}: outcome time must be finite, got {time!r}")
        with self._transaction() as conn:
            row = conn.execute("SELECT decision FROM retraining WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise RetrainingError(f"{self.path}: no retraining history entry #{entry_id}")
            if row[0] != DecisionKind.FIRE.value:
                raise RetrainingError(f"history entry #{entry_id} is {row[0]}: no retrain ran, so no outcome")
            conn.execute(
                "UPDATE retraining SET outcome = ?, outcome_time = ?,"
                " model_version = COALESCE(?, model_version) WHERE id = ?",
                (outcome.value, time, model_version, entry_id),
            )
        return self.get(entry_id)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the database's write lock up front."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise RetrainingError(f"{self.path}: cannot lock the retraining history: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get(self, entry_id: int) -> HistoryEntry:
        """The entry with ``entry_id``.

        Raises:
            RetrainingError: there is none.
        """
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM retraining WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise RetrainingError(f"{self.path}: no retraining history entry #{entry_id}")
        return _entry(row)

    def list(self, sensor: str | None = None, limit: int = 100) -> list[HistoryEntry]:
        """The newest ``limit`` entries, newest first, for one sensor or all.

        Raises:
            InvalidChannelError: ``sensor`` is not a valid id.
            DataError: ``limit`` is not positive.
        """
        if limit <= 0:
            raise DataError(f"limit must be positive, got {limit}")
        with self._lock:
            if sensor is None:
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM retraining ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM retraining WHERE sensor = ? ORDER BY id DESC LIMIT ?",
                    (validate_sensor_id(sensor), limit),
                ).fetchall()
        return [_entry(row) for row in rows]

    def pending(self, sensor: str) -> list[HistoryEntry]:
        """Every fired retrain of ``sensor`` whose outcome is still pending, oldest first.

        Raises:
            InvalidChannelError: ``sensor`` is not a valid id.
        """
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM retraining WHERE sensor = ? AND decision = ? AND outcome = ? ORDER BY id",
                (validate_sensor_id(sensor), DecisionKind.FIRE.value, Outcome.PENDING.value),
            ).fetchall()
        return [_entry(row) for row in rows]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RetrainingHistory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
