from pathlib import Path

import numpy as np
import pytest

from pdm_ray.errors import InvalidChannelError, WalCorruptionError
from pdm_ray.streaming.batch import Batch
from pdm_ray.streaming.sensor import SensorStream, StreamSettings
from pdm_ray.streaming.store import SensorStore, list_sensor_dirs, sensor_dir

from .conftest import make_batches, persistence, stream_settings


def ingest(stream: SensorStream, store: SensorStore, batch: Batch, score: bool = True) -> None:
    """What the actor does with one batch: admit, log, apply, score, log, checkpoint."""
    admitted = stream.admit(batch)
    if admitted is None:
        return
    store.log_batch(admitted)
    request = stream.apply(admitted)
    if request is not None and score:
        preds = stream.check_predictions(request, persistence(request.window))
        store.log_predictions(admitted.seq, preds)
        stream.apply_predictions(request, preds)
    if stream.batches_since_snapshot >= stream.settings.actors.snapshot_every:
        store.checkpoint(stream)


def reference(settings: StreamSettings, batches: list[Batch]) -> SensorStream:
    stream = SensorStream("A-2", settings)
    for batch in batches:
        admitted = stream.admit(batch)
        request = stream.apply(admitted)
        if request is not None:
            stream.apply_predictions(request, stream.check_predictions(request, persistence(request.window)))
    return stream


def test_sensor_dirs(tmp_path: Path) -> None:
    assert sensor_dir(tmp_path, "A-2") == tmp_path / "sensors" / "A-2"
    with pytest.raises(InvalidChannelError):
        sensor_dir(tmp_path, "../etc")
    assert list_sensor_dirs(tmp_path) == []
    for sid in ("B-1", "A-2"):
        store = SensorStore(sensor_dir(tmp_path, sid))
        store.recover(SensorStream(sid, stream_settings()))
        assert sid not in list_sensor_dirs(tmp_path)  # the directory appears with the first write
        store.log_batch(make_batches(3, [3])[0])
    assert list_sensor_dirs(tmp_path) == ["A-2", "B-1"]


def test_read_only_recovery_leaves_a_torn_log_alone(tmp_path: Path, settings: StreamSettings) -> None:
    stream, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    store.recover(stream)
    for batch in make_batches(30, [10]):
        ingest(stream, store, batch, score=False)
    store.close()
    segment = store.wal.segments()[-1]
    torn = segment.read_bytes()[:-9]
    segment.write_bytes(torn)
    reader = SensorStore(tmp_path)
    looked = SensorStream("A-2", settings)
    assert reader.recover(looked, repair=False).replayed == 2
    assert segment.read_bytes() == torn and looked.last_seq == 1
    with pytest.raises(WalCorruptionError, match="recover"):
        reader.log_batch(make_batches(40, [10])[3])


def test_recovery_from_snapshot_plus_wal_equals_the_uncrashed_state(tmp_path: Path, settings: StreamSettings) -> None:
    everything = make_batches(260, [13, 7, 21], spike_at=150)
    batches = everything[:18]  # snapshot every 4 batches: the last covers seq 15
    stream, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    store.recover(stream)
    for batch in batches:
        ingest(stream, store, batch)
    store.close()  # the process dies here; nothing else is flushed

    restored, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    report = store.recover(restored)
    assert report.snapshot_seq == 15 and report.replayed == 2 and report.rescored == 2 and report.pending is None
    expected = reference(settings, batches)
    assert restored.digest() == expected.digest()
    assert restored.recent(100) == expected.recent(100) and expected.recent(100)
    # and it carries on as if nothing happened
    for batch in everything[18:]:
        ingest(restored, store, batch)
    assert restored.digest() == reference(settings, everything).digest()


def test_an_unscored_last_batch_comes_back_pending(tmp_path: Path, settings: StreamSettings) -> None:
    batches = make_batches(60, [10])
    stream, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    store.recover(stream)
    for batch in batches[:-1]:
        ingest(stream, store, batch)
    ingest(stream, store, batches[-1], score=False)  # crash after the log, before the predictions
    store.close()
    restored = SensorStream("A-2", settings)
    report = SensorStore(tmp_path).recover(restored)
    assert report.pending is not None and report.pending.seq == 5 and report.pending.first_index == 50
    restored.apply_predictions(
        report.pending, restored.check_predictions(report.pending, persistence(report.pending.window))
    )
    assert restored.digest() == reference(settings, batches).digest()


def test_a_torn_last_record_loses_only_the_unacked_batch(tmp_path: Path, settings: StreamSettings) -> None:
    batches = make_batches(70, [10])
    stream, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    store.recover(stream)
    for batch in batches:
        ingest(stream, store, batch, score=False)
    store.close()
    segment = store.wal.segments()[-1]
    segment.write_bytes(segment.read_bytes()[:-9])  # the last batch was being written
    restored = SensorStream("A-2", settings)
    report = SensorStore(tmp_path).recover(restored)
    assert restored.last_seq == 5 and report.replayed == 2
    expected = SensorStream("A-2", settings)
    for batch in batches[:-1]:
        expected.apply(expected.admit(batch))
    assert restored.digest() == expected.digest()


def test_checkpoint_drops_the_covered_log(tmp_path: Path, settings: StreamSettings) -> None:
    stream, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    store.recover(stream)
    for batch in make_batches(40, [10]):
        ingest(stream, store, batch, score=False)
    assert store.snapshot_path.exists()
    assert store.wal.segments() == [] and stream.batches_since_snapshot == 0
    with np.load(store.snapshot_path, allow_pickle=False) as archive:
        assert "ring/values" in archive.files and "__meta__" in archive.files


def test_a_gap_in_the_logged_batches_is_corruption(tmp_path: Path, settings: StreamSettings) -> None:
    stream, store = SensorStream("A-2", settings), SensorStore(tmp_path)
    store.recover(stream)
    batches = make_batches(30, [10])
    store.log_batch(batches[0])
    store.log_batch(batches[2])  # batch 1 is missing: the log was damaged, not torn
    store.close()
    with pytest.raises(WalCorruptionError, match="batch 2 logged after batch 0"):
        SensorStore(tmp_path).recover(SensorStream("A-2", settings))
