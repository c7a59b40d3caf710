"""``SensorActor``: one Ray actor per sensor, named ``sensor:<id>``; it holds state and moves data.

The state and every step on it are the core's (``pdm_ray.streaming``): ``SensorStream``
(ring buffer, streaming detector, drift monitor, quality, counters, events) and
``SensorStore`` (write-ahead log and snapshots under ``<home>/sensors/<id>/``). Per batch:

    admit -> log (fsync) -> apply -> predict (forecaster) -> log predictions -> score -> ack

The actor is synchronous with ``max_concurrency=1``, so Ray runs one producer's batches in
the order they were sent, also when it resends them to a restarted actor
(``max_task_retries=-1``). A restart (crash, ``ray.kill(..., no_restart=False)``, kill -9)
rebuilds the state from the snapshot plus a WAL replay; a batch whose ack was lost comes
back as a duplicate. This module imports neither JAX nor the model code: predictions come
from a ``Forecaster`` (a shared ``ModelHost`` actor or a Serve handle).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.exceptions import GetTimeoutError, RayError

from actors.forecaster import Forecaster, wait_predictions
from pdm_ray.config import Settings
from pdm_ray.errors import ModelNotTrainedError, PdmError, RegistryError, UnknownSensorError, WalWriteError
from pdm_ray.streaming import (
    AnomalyEvent,
    Batch,
    Scoring,
    ScoringRequest,
    SensorSeries,
    SensorStatus,
    SensorStore,
    SensorStream,
    StreamSettings,
    sensor_dir,
)

logger = logging.getLogger(__name__)

PREDICT_TIMEOUT_S = 60.0


def actor_name(sensor_id: str) -> str:
    """The Ray actor name of a sensor: ``sensor:<id>``."""
    return f"sensor:{sensor_id}"


@dataclass(frozen=True)
class IngestAck:
    """The answer to one batch.

    Attributes:
        sensor_id: the sensor.
        seq: the batch's sequence number.
        accepted: readings taken (0 for a duplicate).
        duplicate: the seq was at or below the last accepted one; nothing changed.
        events: anomalies this batch's scoring revealed.
        scoring: whether the batch was scored, and if not, why.
    """

    sensor_id: str
    seq: int
    accepted: int
    duplicate: bool
    events: tuple[AnomalyEvent, ...]
    scoring: Scoring

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scoring"] = self.scoring.value
        out["events"] = [e.to_dict() for e in self.events]
        return out


@dataclass(frozen=True)
class ProcessInfo:
    """Which process an actor runs in and which top-level packages it has imported (for memory checks)."""

    pid: int
    modules: tuple[str, ...]


@ray.remote(num_cpus=0, max_concurrency=1, max_task_retries=-1)
class SensorActor:
    """The live state of one sensor.

    Args:
        sensor_id: the sensor (validated).
        settings: ``Settings.model_dump(mode="json")`` with an absolute ``home``.
        forecaster: where predictions come from; None stores and monitors without scoring.
    """

    def __init__(self, sensor_id: str, settings: dict[str, Any], forecaster: Forecaster | None = None) -> None:
        resolved = Settings.model_validate(settings)
        self._stream = SensorStream(sensor_id, StreamSettings.from_settings(resolved))
        self.sensor_id = self._stream.sensor_id
        self._cfg = resolved.actors
        self._store = SensorStore(sensor_dir(resolved.home, self.sensor_id), fsync=self._cfg.fsync)
        self._forecaster = forecaster
        self._no_model_until = 0.0
        report = self._store.recover(self._stream)
        if forecaster is None:
            self._stream.mark_scoring(Scoring.NO_FORECASTER, "started without a forecaster")
        if report.pending is not None and forecaster is not None:
            self._score(report.pending)  # its predictions were lost with the crash
        logger.info(
            "sensor %s: started (pid %d) at batch %d, %d replayed",
            self.sensor_id,
            os.getpid(),
            self._stream.last_seq,
            report.replayed,
        )

    def ingest(self, batch: Batch | dict[str, Any]) -> IngestAck:
        """Take a batch ``{"seq", "timestamps" [n], "values" [n, F]}``; durable before this returns.

        Raises:
            InvalidBatchError: the batch is malformed or does not continue the sensor's
                stream; nothing changed.
            WalWriteError: the batch could not be logged durably (disk full, I/O error);
                nothing changed, resend it.
        """
        admitted = self._stream.admit(batch)
        if admitted is None:
            seq = batch.seq if isinstance(batch, Batch) else int(batch["seq"])
            return IngestAck(self.sensor_id, seq, 0, True, (), self._stream.scoring)
        self._store.log_batch(admitted)
        request = self._stream.apply(admitted)
        events = self._score(request) if request is not None else []
        if self._stream.batches_since_snapshot >= self._cfg.snapshot_every:
            self._store.checkpoint(self._stream)
        return IngestAck(self.sensor_id, admitted.seq, len(admitted), False, tuple(events), self._stream.scoring)

    def _score(self, request: ScoringRequest) -> list[AnomalyEvent]:
        if self._forecaster is None:
            self._stream.mark_scoring(Scoring.NO_FORECASTER, "started without a forecaster")
            return []
        now = time.monotonic()
        if now < self._no_model_until:
            return []  # status keeps saying why
        try:
            raw = wait_predictions(self._forecaster.predict(self.sensor_id, request.window), PREDICT_TIMEOUT_S)
            predictions = self._stream.check_predictions(request, raw)
        except (UnknownSensorError, ModelNotTrainedError, RegistryError) as exc:
            self._no_model_until = now + self._cfg.model_retry_s
            self._stream.mark_scoring(
                Scoring.NO_MODEL, f"{error_line(exc)} (asking again in {self._cfg.model_retry_s:g} s)"
            )
            return []
        except (PdmError, RayError, GetTimeoutError) as exc:
            logger.warning("sensor %s: forecaster failed on batch %d: %s", self.sensor_id, request.seq, error_line(exc))
            self._stream.mark_scoring(Scoring.FORECASTER_ERROR, error_line(exc))
            return []
        try:
            self._store.log_predictions(request.seq, predictions)
        except WalWriteError as exc:  # the batch itself is durable; leave it unscored, as recovery will
            logger.warning("sensor %s: %s", self.sensor_id, exc)
            self._stream.mark_scoring(Scoring.FORECASTER_ERROR, error_line(exc))
            return []
        return self._stream.apply_predictions(request, predictions)

    def status(self) -> SensorStatus:
        """Counters, scoring state, drift and quality now."""
        return self._stream.status()

    def recent(self, n: int = 10) -> list[AnomalyEvent]:
        """The newest ``n`` anomaly events, oldest first."""
        return self._stream.recent(n)

    def series(self, n: int = 1000) -> SensorSeries:
        """The newest ``n`` readings with their forecasts, smoothed errors, thresholds and events (read-only)."""
        return self._stream.series(n)

    def reset_reference(self, values: npt.NDArray[np.float32] | None = None) -> int:
        """Make ``values`` (default: the newest readings) the drift reference; snapshot at once.

        Returns the reference size. The snapshot makes the new reference survive a restart
        (the WAL only replays batches).
        """
        size = self._stream.reset_reference(values)
        self._store.checkpoint(self._stream)
        logger.info("sensor %s: new drift reference of %d readings", self.sensor_id, size)
        return size

    def model_changed(self) -> None:
        """After a promotion: ask the forecaster again at once, and judge only the new model's errors.

        Snapshots at once, so the old model's errors do not come back with a WAL replay.
        """
        self._no_model_until = 0.0
        self._stream.forget_errors()
        self._store.checkpoint(self._stream)

    def checkpoint(self) -> int:
        """Snapshot now (e.g. before a planned shutdown); returns the snapshot size in bytes."""
        return self._store.checkpoint(self._stream)

    def process_info(self) -> ProcessInfo:
        """This actor's pid and imported top-level packages."""
        return ProcessInfo(os.getpid(), tuple(sorted({name.partition(".")[0] for name in sys.modules})))


def error_line(exc: BaseException) -> str:
    """An exception in one line for status and logs: its type and its message's last line
    (for a Ray error, the root cause under the traceback)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]


def sensor_options(settings: Settings, sensor_id: str) -> dict[str, Any]:
    """Ray options of a sensor actor: named, detached, restarted per ``actors.max_restarts``."""
    return {
        "name": actor_name(sensor_id),
        "namespace": settings.ray.namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": settings.actors.max_restarts,
    }


def absolute_paths(settings: Settings) -> Settings:
    """``settings`` with ``home`` and ``data.dir`` made absolute, so processes in other working directories agree."""
    data = settings.data.model_copy(update={"dir": Path(settings.data.dir).resolve()})
    return settings.model_copy(update={"home": Path(settings.home).resolve(), "data": data})
