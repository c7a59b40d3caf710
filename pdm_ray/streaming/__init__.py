"""Streaming core (Ray-free): batch validation, the ring buffer, the write-ahead log and snapshots.

The per-sensor actors in ``actors/`` hold these states and move data; everything that is an
algorithm or a file format lives here, testable without a cluster.
"""

from pdm_ray.streaming.batch import Batch, parse_batch
from pdm_ray.streaming.ring import RingBuffer
from pdm_ray.streaming.snapshot import read_snapshot, write_snapshot
from pdm_ray.streaming.wal import RecordKind, WalRecord, WriteAheadLog

__all__ = [
    "Batch",
    "RecordKind",
    "RingBuffer",
    "WalRecord",
    "WriteAheadLog",
    "parse_batch",
    "read_snapshot",
    "write_snapshot",
]
