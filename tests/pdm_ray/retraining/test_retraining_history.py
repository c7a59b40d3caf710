"""RetrainingHistory on real SQLite files: reopen, outcomes, listing, WAL and several writer processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pdm_ray.errors import DataError, InvalidChannelError, RetrainingError
from pdm_ray.retraining import (
    Decision,
    DecisionKind,
    Outcome,
    RetrainingHistory,
    Trigger,
    history_path,
)


def _decision(sensor: str = "A-1", kind: DecisionKind = DecisionKind.FIRE, time: float = 100.0) -> Decision:
    return Decision(time, sensor, Trigger.DRIFT, kind, {"severity": "critical", "ks_p": 1.5e-9})


def test_write_close_reopen_read(tmp_path: Path) -> None:
    path = history_path(tmp_path / "home")
    assert path == tmp_path / "home" / "retraining.db"
    with RetrainingHistory(path) as history:
        fired = history.record(_decision())
        suppressed = history.record(_decision(kind=DecisionKind.SUPPRESSED_COOLDOWN, time=101.0))
    with RetrainingHistory(path) as history:
        entries = history.list()
    assert [e.id for e in entries] == [suppressed, fired]
    newest, oldest = entries
    assert oldest.time == 100.0 and oldest.sensor == "A-1" and oldest.trigger is Trigger.DRIFT
    assert oldest.evidence == {"severity": "critical", "ks_p": 1.5e-9}
    assert oldest.decision is DecisionKind.FIRE and oldest.outcome is Outcome.PENDING
    assert newest.decision is DecisionKind.SUPPRESSED_COOLDOWN and newest.outcome is None
    assert newest.model_version is None and newest.outcome_time is None


def test_update_outcome_persists(tmp_path: Path) -> None:
    path = tmp_path / "retraining.db"
    with RetrainingHistory(path) as history:
        entry_id = history.record(_decision())
        updated = history.update_outcome(entry_id, Outcome.SUCCEEDED, time=250.0, model_version="7")
    assert updated.outcome is Outcome.SUCCEEDED and updated.outcome_time == 250.0 and updated.model_version == "7"
    with RetrainingHistory(path) as history:
        assert history.get(entry_id) == updated
        # Without a model version the recorded one is kept.
        again = history.update_outcome(entry_id, Outcome.REJECTED, time=260.0)
    assert again.outcome is Outcome.REJECTED and again.model_version == "7"


def test_pending_finds_an_unsettled_retrain_behind_any_number_of_newer_rows(tmp_path: Path) -> None:
    with RetrainingHistory(tmp_path / "h.db") as history:
        settled = history.record(_decision(time=1.0))
        history.update_outcome(settled, Outcome.FAILED, time=2.0)
        lost = history.record(_decision(time=3.0))
        for t in range(60):  # every check while it ran added a suppressed row
            history.record(_decision(kind=DecisionKind.SUPPRESSED_CAP, time=4.0 + t))
        history.record(_decision("B-2", time=5.0))
        assert [e.id for e in history.pending("A-1")] == [lost]


def test_list_filters_by_sensor_and_limits(tmp_path: Path) -> None:
    with RetrainingHistory(tmp_path / "h.db") as history:
        ids = [history.record(_decision(sensor, time=float(i))) for i, sensor in enumerate(["A-1", "B-2"] * 3)]
        a_entries = history.list(sensor="A-1")
        assert [e.id for e in a_entries] == [ids[4], ids[2], ids[0]]
        assert all(e.sensor == "A-1" for e in a_entries)
        assert [e.id for e in history.list(limit=2)] == [ids[5], ids[4]]
        with pytest.raises(DataError, match="limit must be positive"):
            history.list(limit=0)
        with pytest.raises(InvalidChannelError):
            history.list(sensor="no such/sensor")


def test_errors_are_named(tmp_path: Path) -> None:
    with RetrainingHistory(tmp_path / "h.db") as history:
        suppressed = history.record(_decision(kind=DecisionKind.SUPPRESSED_CAP))
        with pytest.raises(RetrainingError, match="no retraining history entry #99"):
            history.update_outcome(99, Outcome.FAILED, time=1.0)
        with pytest.raises(RetrainingError, match=f"#{suppressed} is suppressed_cap"):
            history.update_outcome(suppressed, Outcome.FAILED, time=1.0)
        with pytest.raises(RetrainingError, match="has no retrain, so no outcome"):
            history.record(_decision(kind=DecisionKind.SUPPRESSED_CAP), outcome=Outcome.FAILED)
        with pytest.raises(DataError, match="evidence is not finite JSON"):
            history.record(Decision(1.0, "A-1", Trigger.MANUAL, DecisionKind.FIRE, {"x": float("nan")}))
        with pytest.raises(RetrainingError, match="no retraining history entry #123"):
            history.get(123)
        assert len(history.list()) == 1  # failed writes left nothing behind
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RetrainingError, match="cannot open the retraining history"):
        RetrainingHistory(tmp_path / "junk.db")


def test_journal_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    RetrainingHistory(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


WRITER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from pdm_ray.retraining import Decision, DecisionKind, RetrainingHistory, Trigger

    path, sensor = sys.argv[1], sys.argv[2]
    with RetrainingHistory(path) as history:
        # Start writing together: announce readiness, wait for the parent's go.
        (Path(path).parent / f"ready-{sensor}").touch()
        while not (Path(path).parent / "go").exists():
            time.sleep(0.005)
        for i in range(40):
            history.record(Decision(float(i), sensor, Trigger.MANUAL, DecisionKind.FIRE, {"i": i}))
            history.list(limit=5)
    """
)


def test_several_processes_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    RetrainingHistory(path).close()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), sensor], stderr=subprocess.PIPE)
        for sensor in ("A-1", "B-2", "C-3")
    ]
    while len(list(tmp_path.glob("ready-*"))) < len(writers) and all(w.poll() is None for w in writers):
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    with RetrainingHistory(path) as history:
        entries = history.list(limit=1000)
    assert len(entries) == 120 and len({e.id for e in entries}) == 120
    for sensor in ("A-1", "B-2", "C-3"):
        mine = [e.evidence["i"] for e in entries if e.sensor == sensor]
        assert mine == list(range(39, -1, -1))  # each writer's rows in its own order
