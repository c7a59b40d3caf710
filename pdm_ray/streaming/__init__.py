"""Streaming core (Ray-free): batch validation, ring buffer, write-ahead log, snapshots, sensor state.

The per-sensor actors in ``actors/`` hold a ``SensorStream`` and a ``SensorStore`` and move
data between them and the forecaster; every algorithm and file format lives here, testable
without a cluster.
"""

from pdm_ray.streaming.batch import Batch, parse_batch
from pdm_ray.streaming.ring import RingBuffer
from pdm_ray.streaming.sensor import (
    AnomalyEvent,
    Scoring,
    ScoringRequest,
    SensorStatus,
    SensorStream,
    StreamSettings,
)
from pdm_ray.streaming.series import ForecastTrace, SensorSeries, SeriesEvent
from pdm_ray.streaming.snapshot import read_snapshot, write_snapshot
from pdm_ray.streaming.store import RecoveryReport, SensorStore, list_sensor_dirs, sensor_dir
from pdm_ray.streaming.wal import RecordKind, WalRecord, WriteAheadLog

__all__ = [
    "AnomalyEvent",
    "Batch",
    "ForecastTrace",
    "RecordKind",
    "RecoveryReport",
    "RingBuffer",
    "Scoring",
    "ScoringRequest",
    "SensorSeries",
    "SensorStatus",
    "SensorStore",
    "SensorStream",
    "SeriesEvent",
    "StreamSettings",
    "WalRecord",
    "WriteAheadLog",
    "list_sensor_dirs",
    "parse_batch",
    "read_snapshot",
    "sensor_dir",
    "write_snapshot",
]
