"""Durable state of one sensor under ``<home>/sensors/<id>/``: ``snapshot.npz`` and ``wal/``.

Protocol (what makes an acked batch survive any crash):

1. ``log_batch`` appends the admitted batch to the write-ahead log and fsyncs it; only then
   is it applied and acked.
2. ``log_predictions`` appends the predictions it was scored with (no sync of its own).
3. Every ``snapshot_every`` batches, ``checkpoint`` writes the whole state atomically, then
   deletes the WAL segments it covers.

``recover`` loads the snapshot and replays the WAL records after it through the same
``SensorStream`` methods, using the logged predictions, so the result equals the state
before the crash. A last batch whose predictions were never logged comes back as
``RecoveryReport.pending``: the caller may score it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import WalCorruptionError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.streaming.batch import Batch
from pdm_ray.streaming.sensor import ScoringRequest, SensorStream
from pdm_ray.streaming.snapshot import read_snapshot, write_snapshot
from pdm_ray.streaming.wal import RecordKind, WriteAheadLog

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.npz"
WAL_DIR = "wal"


def sensor_dir(home: str | Path, sensor_id: str) -> Path:
    """``<home>/sensors/<id>``; the id is validated because it becomes a path."""
    return Path(home) / "sensors" / validate_sensor_id(sensor_id)


def list_sensor_dirs(home: str | Path) -> list[str]:
    """Ids of the sensors with a state directory under ``<home>/sensors`` (sorted)."""
    root = Path(home) / "sensors"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


@dataclass(frozen=True)
class RecoveryReport:
    """What ``recover`` found.

    Attributes:
        snapshot_seq: last batch covered by the snapshot (-1 without one).
        replayed: batches replayed from the WAL after it.
        rescored: of those, batches whose logged predictions were re-applied.
        pending: the last batch's scoring request if its predictions were never logged.
    """

    snapshot_seq: int
    replayed: int
    rescored: int
    pending: ScoringRequest | None


class SensorStore:
    """The snapshot and write-ahead log of one sensor.

    Args:
        directory: the sensor's directory (``sensor_dir(home, id)``), created on the first write.
        fsync: fsync each logged batch before ``log_batch`` returns.
    """

    def __init__(self, directory: str | Path, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.snapshot_path = self.directory / SNAPSHOT_FILE
        self.wal = WriteAheadLog(self.directory / WAL_DIR, sync=fsync)

    def recover(self, stream: SensorStream, repair: bool = True) -> RecoveryReport:
        """Load the snapshot into ``stream`` and replay the WAL records after it.

        Args:
            stream: a fresh stream of this sensor.
            repair: truncate a torn WAL tail and allow logging afterwards; False only reads
                (to inspect a sensor whose actor may be running).

        Raises:
            DataError: a damaged snapshot.
            WalCorruptionError: a damaged WAL (other than a torn last record, which is cut),
                or one whose batches after the snapshot do not follow each other.
        """
        state = read_snapshot(self.snapshot_path)
        if state is not None:
            stream.load_state(state)
        snapshot_seq = stream.last_seq
        replayed = rescored = 0
        pending: ScoringRequest | None = None
        for record in self.wal.recover(repair):
            if record.seq <= snapshot_seq:
                continue  # covered by the snapshot (written before its segments were deleted)
            if record.kind == RecordKind.DATA:
                if record.seq != stream.last_seq + 1:
                    raise WalCorruptionError(
                        f"{self.wal.directory}: batch {record.seq} logged after batch {stream.last_seq}"
                    )
                pending = stream.apply(record.batch())
                replayed += 1
            elif pending is not None and pending.seq == record.seq:
                stream.apply_predictions(pending, stream.check_predictions(pending, record.values))
                pending = None
                rescored += 1
        logger.info(
            "sensor %s: recovered snapshot through batch %d, replayed %d batches (%d scored)",
            stream.sensor_id,
            snapshot_seq,
            replayed,
            rescored,
        )
        return RecoveryReport(snapshot_seq, replayed, rescored, pending)

    def log_batch(self, batch: Batch) -> int:
        """Durably log an admitted batch (before applying or acking it). Returns bytes written."""
        return self.wal.append_batch(batch)

    def log_predictions(self, seq: int, predictions: npt.NDArray[np.float32]) -> int:
        """Log the predictions batch ``seq`` is scored with. Returns bytes written."""
        return self.wal.append_predictions(seq, predictions)

    def checkpoint(self, stream: SensorStream) -> int:
        """Snapshot ``stream`` atomically, then drop the WAL it covers. Returns the snapshot size."""
        size = write_snapshot(self.snapshot_path, stream.to_state())
        self.wal.rotate()
        stream.batches_since_snapshot = 0
        logger.debug("sensor %s: snapshot through batch %d (%d bytes)", stream.sensor_id, stream.last_seq, size)
        return size

    def close(self) -> None:
        self.wal.close()
