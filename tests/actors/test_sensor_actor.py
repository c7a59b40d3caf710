import asyncio
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from actors.forecaster import PersistenceForecaster
from actors.producer import send_batches
from actors.sensor import SensorActor, absolute_paths, sensor_options
from pdm_ray.errors import InvalidBatchError
from pdm_ray.streaming import Scoring

from .conftest import sine_batches, small_settings

pytestmark = pytest.mark.ray


def _start(settings, sensor_id: str, forecaster=None, named: bool = True):
    data = absolute_paths(settings).model_dump(mode="json")
    cls = SensorActor.options(**sensor_options(settings, sensor_id)) if named else SensorActor
    return cls.remote(sensor_id, data, forecaster)


def test_ingest_acks_stores_and_says_why_it_does_not_score(ray_actors: None, tmp_path: Path) -> None:
    actor = _start(small_settings(tmp_path), "S-1")
    b0, b1 = sine_batches(20, 10)
    ack = ray.get(actor.ingest.remote({"seq": 0, "timestamps": b0.timestamps.tolist(), "values": b0.values.tolist()}))
    assert (ack.accepted, ack.seq, ack.duplicate, ack.events) == (10, 0, False, ())
    assert ray.get(actor.ingest.remote(b1)).accepted == 10
    dup = ray.get(actor.ingest.remote(b1))
    assert dup.duplicate and dup.accepted == 0
    before = ray.get(actor.status.remote())
    bad = {"seq": 2, "timestamps": [5000.0, 5001.0], "values": [[1.0, 0.0], [np.nan, 0.0]]}
    with pytest.raises(InvalidBatchError, match="non-finite"):
        ray.get(actor.ingest.remote(bad))
    after = ray.get(actor.status.remote())
    assert after.digest == before.digest and after.rejected == 1 and after.duplicates == 1
    assert after.readings == 20 and after.last_seq == 1
    assert after.scoring == Scoring.NO_FORECASTER and "without a forecaster" in after.scoring_detail
    assert (tmp_path / "sensors" / "S-1" / "wal").is_dir()
    modules = set(ray.get(actor.process_info.remote()).modules)
    assert not {"scipy", "jax", "mlflow", "pandas"} & modules  # an unscored sensor stays small


def test_scoring_with_a_forecaster_reports_events(ray_actors: None, tmp_path: Path) -> None:
    actor = _start(small_settings(tmp_path), "S-2", PersistenceForecaster())
    acks = ray.get([actor.ingest.remote(b) for b in sine_batches(200, 20, spike_at=120)])
    events = [e for ack in acks for e in ack.events]
    assert events and any(e.start <= 122 and e.end >= 120 for e in events)
    assert all(ack.scoring == Scoring.SCORING for ack in acks[1:])
    status = ray.get(actor.status.remote())
    assert status.scored == 195 and status.events == len(events)
    assert ray.get(actor.recent.remote(100)) == events
    info = ray.get(actor.process_info.remote())
    assert not {"jax", "flax", "optax", "mlflow", "pandas"} & set(info.modules)


CRASH_AFTER_ACKS = 3  # the crash comes when the send path has settled this many of the 17 later batches


def _wait_for_restart(actor, old_pid: int) -> int:
    """The pid of the restarted actor, once it answers from a process other than ``old_pid``.

    ``ray.kill`` returns before the actor's process is gone, so a call may still reach the old
    one; each call here is retried by Ray until the restarted actor answers it.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pid = ray.get(actor.process_info.remote(), timeout=120).pid
        if pid != old_pid:
            return pid
    raise AssertionError(f"the actor still runs in pid {old_pid}: the crash did not happen")


def _crash_and_compare(tmp_path: Path, sensor_id: str, crash) -> None:
    settings = small_settings(tmp_path / "crashing")
    reference = _start(small_settings(tmp_path / "reference"), sensor_id, PersistenceForecaster(), named=False)
    actor = _start(settings, sensor_id, PersistenceForecaster())
    batches = sine_batches(300, 10, spike_at=200)
    ray.get([reference.ingest.remote(b) for b in batches])
    first = ray.get([actor.ingest.remote(b) for b in batches[:13]])  # a snapshot after batch 11, WAL after it
    old_pid = ray.get(actor.process_info.remote()).pid
    rest = batches[13:]

    async def produce() -> tuple[list, int, int, int]:
        acked: list[int] = []
        pulled = 0
        crash_now = asyncio.Event()

        def on_ack(ack) -> None:
            acked.append(ack.seq)
            if len(acked) == CRASH_AFTER_ACKS:
                crash_now.set()

        async def counted():
            nonlocal pulled
            for batch in rest:
                pulled += 1  # the send path calls ingest with a batch only after it pulled it
                yield batch

        sending = asyncio.ensure_future(send_batches(actor, counted(), max_in_flight=8, on_ack=on_ack))
        crash_due = asyncio.ensure_future(crash_now.wait())
        await asyncio.wait([sending, crash_due], return_when=asyncio.FIRST_COMPLETED)
        assert crash_now.is_set() and not sending.done(), f"the stream ended after {len(acked)} acks"
        acked_at_crash, pulled_at_crash = len(acked), pulled
        crash(actor, old_pid)
        new_pid = _wait_for_restart(actor, old_pid)  # batches pulled from here on reach the new process
        later = await sending
        assert acked == [a.seq for a in later]
        return later, acked_at_crash, pulled_at_crash, new_pid

    later, acked_at_crash, pulled_at_crash, new_pid = asyncio.run(produce())
    # Mid-stream: some batches were acked by the old process, and the others were not even
    # pulled before the restarted one answered (the send path had pulled at most the acked
    # ones, the 8 in flight and the one waiting for a free slot).
    assert CRASH_AFTER_ACKS <= acked_at_crash < len(rest)
    assert pulled_at_crash <= CRASH_AFTER_ACKS + 8 + 1 < len(rest)
    assert new_pid != old_pid and ray.get(actor.process_info.remote()).pid == new_pid
    assert [a.seq for a in later] == list(range(13, 30))
    assert sum(a.accepted for a in first + later) + 10 * sum(a.duplicate for a in later) == 300
    assert sum(a.duplicate for a in later) <= 1  # at most the batch whose ack the crash lost
    got, want = ray.get(actor.status.remote()), ray.get(reference.status.remote())
    assert got.digest == want.digest
    assert (got.readings, got.last_seq, got.scored, got.events) == (
        want.readings,
        want.last_seq,
        want.scored,
        want.events,
    )
    assert ray.get(actor.recent.remote(100)) == ray.get(reference.recent.remote(100))
    ray.kill(reference)


@pytest.mark.slow
def test_ray_kill_mid_stream_loses_nothing(ray_actors: None, tmp_path: Path) -> None:
    _crash_and_compare(tmp_path, "K-1", lambda actor, pid: ray.kill(actor, no_restart=False))


@pytest.mark.slow
def test_kill_9_mid_stream_loses_nothing(ray_actors: None, tmp_path: Path) -> None:
    _crash_and_compare(tmp_path, "K-2", lambda actor, pid: os.kill(pid, signal.SIGKILL))


def test_reset_reference_survives_a_restart(ray_actors: None, tmp_path: Path) -> None:
    actor = _start(small_settings(tmp_path), "S-3")
    ray.get([actor.ingest.remote(b) for b in sine_batches(60, 10)])
    assert ray.get(actor.reset_reference.remote(np.linspace(0.0, 1.0, 30, dtype=np.float32))) == 30
    digest = ray.get(actor.status.remote()).digest
    ray.kill(actor, no_restart=False)
    assert ray.get(actor.status.remote()).digest == digest
