"""One sensor's live state, as plain data the actor holds: ``SensorStream``.

A batch goes through ``admit`` (checks, duplicate detection), then ``apply`` (ring buffer,
drift window, quality cadence, counters) which returns what the forecaster must score;
``apply_predictions`` turns the forecaster's one-step predictions into errors, runs the
streaming Telemanom detector (Hundman et al. 2018, arXiv:1802.04431) and returns new anomaly
events. Every step is deterministic in the batches and predictions it is given, so a
snapshot plus a replay of the write-ahead log (``pdm_ray.streaming.store``) rebuilds exactly
the state an uncrashed sensor would have.

Predictions and errors are in the sensor's own units: the forecaster applies its model's
normalizer on the way in and inverts it on the way out.

The detector and the drift monitor are imported when first needed, not with this module:
they pull in scipy (``scipy.signal`` alone adds about 45 MiB to a process), and a sensor
actor that is idle, or has no model to score with, should not carry it.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pdm_ray.config import ActorsSettings, DriftSettings, QualitySettings, Settings, ThresholdSettings
from pdm_ray.data.quality import QualityReport, assess_quality
from pdm_ray.errors import ConfigError, DataError, InsufficientDataError, InvalidBatchError, OutOfOrderBatchError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.streaming.batch import Batch, parse_batch
from pdm_ray.streaming.ring import RingBuffer
from pdm_ray.streaming.series import (
    ForecastTrace,
    SensorSeries,
    judging_thresholds,
    overlapping_events,
    traced_smoothing,
)
from pdm_ray.streaming.snapshot import pack_state

if TYPE_CHECKING:
    from pdm_ray.drift import DriftMonitor

logger = logging.getLogger(__name__)

STATE_VERSION = 1
_NOT_DIGESTED = ("duplicates", "rejected")  # counters that depend on retries, not on the data


class Scoring(enum.StrEnum):
    """Whether new readings are being scored, and if not, why."""

    SCORING = "scoring"
    WARMING_UP = "warming_up"  # fewer than l_s readings so far
    NO_FORECASTER = "no_forecaster"  # the actor was started without one
    NO_MODEL = "no_model"  # the forecaster has no model for this sensor
    FORECASTER_ERROR = "forecaster_error"  # the last request failed


@dataclass(frozen=True)
class StreamSettings:
    """What a ``SensorStream`` needs from the settings (the sections it reads, nothing global)."""

    actors: ActorsSettings
    threshold: ThresholdSettings
    drift: DriftSettings
    quality: QualitySettings
    l_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamSettings:
        """The sections of ``settings`` a stream reads (``l_s`` from ``windows``)."""
        return cls(settings.actors, settings.threshold, settings.drift, settings.quality, settings.windows.l_s)

    def __post_init__(self) -> None:
        if self.actors.buffer_size < self.l_s:
            raise ConfigError(
                f"actors.buffer_size ({self.actors.buffer_size}) must be at least windows.l_s ({self.l_s})"
            )
        if self.actors.drift_reference_size < self.drift.min_samples:
            raise ConfigError(
                f"actors.drift_reference_size ({self.actors.drift_reference_size}) must be at least "
                f"drift.min_samples ({self.drift.min_samples})"
            )


@dataclass(frozen=True)
class ScoringRequest:
    """What to ask the forecaster after a batch.

    Attributes:
        seq: the batch.
        first_index: absolute reading index of the first reading to predict.
        window: float32 ``[l_s + m, F]``, the ``l_s`` readings before the first predicted one
            and the ``m`` readings to predict.
        targets: float32 ``[m]``, channel 0 of the readings to predict.
    """

    seq: int
    first_index: int
    window: npt.NDArray[np.float32] = field(repr=False)
    targets: npt.NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class AnomalyEvent:
    """An anomalous sequence of readings found by the streaming detector.

    Attributes:
        sensor_id: the sensor.
        start, end: inclusive absolute reading indices (0 = the sensor's first reading).
        start_time, end_time: their timestamps (None if no longer buffered when found).
        score: Telemanom's anomaly score of the sequence.
        seq: the batch whose scoring revealed it.
    """

    sensor_id: str
    start: int
    end: int
    start_time: float | None
    end_time: float | None
    score: float
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SensorStatus:
    """A sensor's counters and health at one moment.

    ``last_seq`` is -1 before the first batch; ``rolling_mse`` is the mean squared forecast
    error over the last ``rolling_points`` (at most ``actors.error_window``) scored readings,
    in squared sensor units; ``drift_severity`` and ``quality`` are None until there is a
    reference or an assessment; ``digest`` fingerprints the replayable state
    (buffer, detector, drift, quality, events, counters other than duplicates and rejects).
    """

    sensor_id: str
    last_seq: int
    last_timestamp: float | None
    n_features: int | None
    readings: int
    batches: int
    duplicates: int
    rejected: int
    buffered: int
    scored: int
    events: int
    scoring: Scoring
    scoring_detail: str
    rolling_mse: float | None
    rolling_points: int
    drift: bool | None
    drift_severity: str | None
    quality: str | None
    quality_reasons: tuple[str, ...]
    digest: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scoring"] = self.scoring.value
        out["quality_reasons"] = list(self.quality_reasons)
        return out


class SensorStream:
    """The live state of one sensor: ring buffer, detector, drift monitor, quality, counters, events.

    Args:
        sensor_id: validated sensor id.
        settings: the sections the stream reads.
    """

    def __init__(self, sensor_id: str, settings: StreamSettings) -> None:
        self.sensor_id = validate_sensor_id(sensor_id)
        self.settings = settings
        self.ring: RingBuffer | None = None
        self.trace: ForecastTrace | None = None  # forecasts and smoothed errors of the buffered readings
        self.last_seq = -1
        self.counters = {"batches": 0, "duplicates": 0, "rejected": 0, "scored": 0, "events": 0}
        self.events: deque[AnomalyEvent] = deque(maxlen=settings.actors.recent_events)
        self.drift: DriftMonitor | None = None
        self.quality: QualityReport | None = None
        self.batches_since_quality = 0
        self.batches_since_snapshot = 0
        self._detector: Any = None  # detector.StreamState
        self._detector_offset = 0  # reading index of the detector's index 0
        self._detector_next = 0  # reading index the detector expects next
        # ring, by scored count; float64, so a huge but finite reading does not square to inf
        self._squared_errors = np.zeros(settings.actors.error_window, np.float64)
        self._scored_total = 0
        self.scoring = Scoring.WARMING_UP
        self.scoring_detail = f"waiting for {settings.l_s} readings"

    # ------------------------------------------------------------------ ingest
    def admit(self, raw: Batch | dict[str, Any]) -> Batch | None:
        """Check a batch against this sensor; None means a duplicate (seq at or below the last).

        Sequence numbers of a sensor are 0, 1, 2, ...: a batch is accepted only as the next
        one, so a replay is recognised exactly and a batch that overtook an earlier one (e.g.
        retried out of order after an actor restart) is refused instead of being mistaken
        for a duplicate.

        Raises:
            OutOfOrderBatchError: the batch is valid but not the next (``last_seq + 1``).
            InvalidBatchError: the batch is malformed, has the wrong number of features, or
                starts at or before the last accepted timestamp.
            In every case nothing changes except the ``rejected`` counter.
        """
        try:
            batch = parse_batch(raw, self.settings.actors.max_batch_readings)
            if batch.seq <= self.last_seq:
                self.counters["duplicates"] += 1
                return None
            if self.ring is not None:
                if batch.n_features != self.ring.n_features:
                    raise InvalidBatchError(
                        f"sensor {self.sensor_id}: batch {batch.seq} has {batch.n_features} features, "
                        f"the sensor has {self.ring.n_features}"
                    )
                last = self.last_timestamp
                if last is not None and batch.timestamps[0] <= last:
                    raise InvalidBatchError(
                        f"sensor {self.sensor_id}: batch {batch.seq} starts at {float(batch.timestamps[0])!r}, "
                        f"not after the last accepted timestamp {last!r}"
                    )
            if batch.seq != self.last_seq + 1:
                raise OutOfOrderBatchError(
                    f"sensor {self.sensor_id}: expects batch {self.last_seq + 1} next, got {batch.seq}"
                )
        except InvalidBatchError:
            self.counters["rejected"] += 1
            raise
        return batch

    def apply(self, batch: Batch) -> ScoringRequest | None:
        """Add an admitted batch; returns the readings to score, or None while warming up.

        The batch's values ``[n, F]`` go into the ring buffer and channel 0 into the drift
        window; quality is reassessed every ``quality_every`` batches.
        """
        cfg = self.settings.actors
        if self.ring is None:
            self.ring = RingBuffer(cfg.buffer_size, batch.n_features)
            self.trace = ForecastTrace(cfg.buffer_size)
        request = self._scoring_request(batch)
        self.ring.extend(batch.timestamps, batch.values)
        self.trace.extend(len(batch))
        self.last_seq = batch.seq
        self.counters["batches"] += 1
        self.batches_since_snapshot += 1
        column = batch.values[:, 0]
        if self.drift is not None:
            self.drift.update(column)
        elif self.ring.total >= cfg.drift_reference_size:
            from pdm_ray.drift import DriftMonitor

            self.drift = DriftMonitor(self.settings.drift, self.ring.last(cfg.drift_reference_size)[1][:, 0])
        self.batches_since_quality += 1
        if self.batches_since_quality >= cfg.quality_every:
            self.assess_quality()
        if request is None:
            self.scoring = Scoring.WARMING_UP
            self.scoring_detail = f"{self.ring.total} of {self.settings.l_s} readings before the first prediction"
        return request

    def _scoring_request(self, batch: Batch) -> ScoringRequest | None:
        l_s = self.settings.l_s
        history = self.ring.last(l_s)[1] if self.ring is not None else np.zeros((0, batch.n_features), np.float32)
        m = len(batch) - max(0, l_s - history.shape[0])
        if m <= 0:
            return None
        window = np.concatenate([history, batch.values])[-(l_s + m) :]
        total = self.ring.total if self.ring is not None else 0
        return ScoringRequest(batch.seq, total + len(batch) - m, window, batch.values[-m:, 0].copy())

    def check_predictions(self, request: ScoringRequest, predictions: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The last ``m`` one-step predictions as float32 ``[m]`` (a model with a shorter ``l_s`` returns more).

        Raises:
            DataError: not a finite 1-D array of at least ``m`` values.
        """
        m = request.targets.shape[0]
        arr = np.asarray(predictions)
        if arr.ndim != 1 or arr.shape[0] < m or not np.issubdtype(arr.dtype, np.number):
            raise DataError(
                f"sensor {self.sensor_id}: forecaster returned {arr.dtype} {arr.shape} for batch {request.seq}, "
                f"expected at least {m} numbers"
            )
        arr = arr[-m:].astype(np.float32)
        if not np.isfinite(arr).all():
            raise DataError(
                f"sensor {self.sensor_id}: forecaster returned non-finite predictions for batch {request.seq}"
            )
        return arr

    def apply_predictions(self, request: ScoringRequest, predictions: npt.NDArray[np.float32]) -> list[AnomalyEvent]:
        """Score the request's readings with ``check_predictions`` output ``[m]``; returns new events.

        A gap (readings that were never scored, e.g. while no model existed) restarts the
        detector at the first reading of this request.
        """
        from pdm_ray.detection import streaming as detector

        if self._detector is None or request.first_index != self._detector_next:
            if self._detector is not None:
                logger.info(
                    "sensor %s: scoring gap from reading %d to %d, detector restarted",
                    self.sensor_id,
                    self._detector_next,
                    request.first_index,
                )
            self._detector = detector.init_stream(self.settings.threshold)
            self._detector_offset = request.first_index
        errors = predictions - request.targets
        smoothed_from, smoothed = traced_smoothing(self._detector, errors)
        self._detector, sequences = detector.update_stream(self._detector, errors, request.targets)
        if self.trace is not None:  # always, once there are readings
            self.trace.put(request.first_index, forecast=predictions)
            self.trace.put(self._detector_offset + smoothed_from, smoothed=smoothed)
        m = request.targets.shape[0]
        self._remember_squared_errors(np.square(errors, dtype=np.float64))
        self._detector_next = request.first_index + m
        self.counters["scored"] += m
        self.scoring = Scoring.SCORING
        self.scoring_detail = f"scored through reading {self._detector_next - 1}"
        if not sequences:
            return []
        starts = np.array([s.start for s in sequences], dtype=np.int64) + self._detector_offset
        ends = np.array([s.end for s in sequences], dtype=np.int64) + self._detector_offset
        ring = self.ring
        times = (
            ring.timestamps_at(np.concatenate([starts, ends])) if ring is not None else np.full(2 * len(starts), np.nan)
        )
        k = len(sequences)
        events = [
            AnomalyEvent(
                self.sensor_id,
                int(starts[i]),
                int(ends[i]),
                None if np.isnan(times[i]) else float(times[i]),
                None if np.isnan(times[k + i]) else float(times[k + i]),
                float(sequences[i].score),
                request.seq,
            )
            for i in range(k)
        ]
        self.events.extend(events)
        self.counters["events"] += k
        for event in events:
            logger.info(
                "sensor %s: anomaly at readings %d-%d, score %.3f", self.sensor_id, event.start, event.end, event.score
            )
        return events

    def _remember_squared_errors(self, squared: npt.NDArray[np.float64]) -> None:
        """Keep the newest ``error_window`` squared errors of ``[m]`` (one scatter, no loop)."""
        window = self._squared_errors.shape[0]
        m = squared.shape[0]
        keep = min(m, window)
        slots = (self._scored_total + m - keep + np.arange(keep)) % window
        self._squared_errors[slots] = squared[m - keep :]
        self._scored_total += m

    def _recent_squared_errors(self) -> npt.NDArray[np.float64]:
        """The kept squared errors, oldest first ``[min(scored, error_window)]``."""
        window = self._squared_errors.shape[0]
        k = min(self._scored_total, window)
        return self._squared_errors[(np.arange(self._scored_total - k, self._scored_total) % window)]

    def forget_errors(self) -> None:
        """Drop the rolling forecast errors: after a new model, they judged the one it replaced."""
        self._squared_errors[:] = 0.0
        self._scored_total = 0

    def mark_scoring(self, scoring: Scoring, detail: str) -> None:
        """Record why the last batch was (not) scored, for ``status``."""
        self.scoring = scoring
        self.scoring_detail = detail

    # ------------------------------------------------------------ monitoring
    def assess_quality(self) -> QualityReport | None:
        """Assess the last ``quality_window`` buffered readings; None with fewer than 3."""
        self.batches_since_quality = 0
        if self.ring is None:
            return None
        ts, values = self.ring.last(self.settings.actors.quality_window)
        try:
            self.quality = assess_quality(values, self.settings.quality, timestamps=ts)
        except InsufficientDataError:
            self.quality = None
        return self.quality

    def reset_reference(self, values: npt.ArrayLike | None = None) -> int:
        """Make ``values`` ``[k]`` (default: the newest ``drift_reference_size`` readings) the drift reference.

        Returns the reference size.

        Raises:
            InsufficientDataError: fewer values than ``drift.min_samples``.
            DataError: values that are not a finite 1-D sample.
        """
        if values is None:
            if self.ring is None:
                raise InsufficientDataError(f"sensor {self.sensor_id}: no readings yet to take a drift reference from")
            values = self.ring.last(self.settings.actors.drift_reference_size)[1][:, 0]
        if self.drift is None:
            from pdm_ray.drift import DriftMonitor

            self.drift = DriftMonitor(self.settings.drift, values)
        else:
            self.drift.reset_reference(values)
        return int(self.drift.reference.values.shape[0])

    @property
    def last_timestamp(self) -> float | None:
        if self.ring is None or len(self.ring) == 0:
            return None
        return float(self.ring.last(1)[0][0])

    def recent(self, n: int) -> list[AnomalyEvent]:
        """The newest ``n`` events, oldest first."""
        return list(self.events)[-n:] if n > 0 else []

    def series(self, n: int) -> SensorSeries:
        """The newest ``min(n, buffered)`` readings with their forecasts, smoothed errors, thresholds and events.

        Read-only. Thresholds are recomputed from the kept smoothed errors
        (``series.judging_thresholds``); points before a detector restart or whose window
        is no longer buffered have none.

        Raises:
            DataError: ``n`` is not positive.
        """
        if n <= 0:
            raise DataError(f"sensor {self.sensor_id}: series length must be positive, got {n}")
        if self.ring is None or self.trace is None:
            empty = np.zeros(0, dtype=np.float32)
            return SensorSeries(self.sensor_id, 0, np.zeros(0), empty, empty, empty, empty)
        ts, values = self.ring.last(n)
        k = ts.shape[0]
        first = self.ring.total - k
        forecast, smoothed = self.trace.window(first, first + k)
        threshold = np.full(k, np.nan, dtype=np.float32)
        intervals = [(e.start, e.end, e.score, True) for e in self.events]
        if self._detector is not None:
            cfg = self.settings.threshold
            h = cfg.batch_size * cfg.window_size  # the first points' windows start up to h readings earlier
            _, reach = self.trace.window(first - h, first + k)
            threshold = judging_thresholds(reach, first - h - self._detector_offset, self._detector.judged, cfg)[h:]
            open_sequence = self._detector.open_sequence
            if open_sequence is not None:
                offset = self._detector_offset
                intervals.append((open_sequence.start + offset, open_sequence.end + offset, open_sequence.score, False))
        return SensorSeries(
            sensor_id=self.sensor_id,
            first_index=first,
            timestamps=ts,
            values=values[:, 0].copy(),
            forecast=forecast,
            smoothed_errors=smoothed,
            threshold=threshold,
            events=overlapping_events(intervals, first, ts),
        )

    def status(self) -> SensorStatus:
        """Counters and health now (runs a drift check when there is a reference)."""
        recent = self._recent_squared_errors()
        drift_flag: bool | None = None
        severity: str | None = None
        if self.drift is not None:
            try:
                report = self.drift.check()
                drift_flag, severity = bool(report.drift), report.severity.value
            except InsufficientDataError:
                pass
        return SensorStatus(
            sensor_id=self.sensor_id,
            last_seq=self.last_seq,
            last_timestamp=self.last_timestamp,
            n_features=None if self.ring is None else self.ring.n_features,
            readings=0 if self.ring is None else self.ring.total,
            batches=self.counters["batches"],
            duplicates=self.counters["duplicates"],
            rejected=self.counters["rejected"],
            buffered=0 if self.ring is None else len(self.ring),
            scored=self.counters["scored"],
            events=self.counters["events"],
            scoring=self.scoring,
            scoring_detail=self.scoring_detail,
            rolling_mse=float(np.mean(recent, dtype=np.float64)) if recent.size else None,
            rolling_points=int(recent.size),
            drift=drift_flag,
            drift_severity=severity,
            quality=None if self.quality is None else self.quality.status.label,
            quality_reasons=() if self.quality is None else tuple(self.quality.reasons),
            digest=self.digest(),
        )

    # ----------------------------------------------------------- persistence
    def to_state(self) -> dict[str, Any]:
        """The replayable state as a tree of arrays and JSON scalars (see ``snapshot``)."""
        detector_state = None
        if self._detector is not None:
            from pdm_ray.detection import streaming as detector

            detector_state = {
                "offset": self._detector_offset,
                "next": self._detector_next,
                "state": detector.state_to_arrays(self._detector),
            }
        return {
            "version": STATE_VERSION,
            "sensor_id": self.sensor_id,
            "last_seq": self.last_seq,
            "counters": dict(self.counters),
            "scoring": [self.scoring.value, self.scoring_detail],
            "batches_since_quality": self.batches_since_quality,
            "ring": None if self.ring is None else self.ring.to_state(),
            "trace": None if self.trace is None else self.trace.to_state(len(self.ring)),
            "detector": detector_state,
            "errors": {"scored": self._scored_total, "squared": self._recent_squared_errors()},
            "drift": None if self.drift is None else self.drift.to_state(),
            "quality": None if self.quality is None else self.quality.to_dict(),
            "events": [e.to_dict() for e in self.events],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace this stream's state with ``to_state`` output.

        Raises:
            DataError: a state of another version or sensor, or a damaged part.
        """
        if state.get("version") != STATE_VERSION or state.get("sensor_id") != self.sensor_id:
            raise DataError(
                f"sensor {self.sensor_id}: snapshot is version {state.get('version')!r} of sensor "
                f"{state.get('sensor_id')!r}, expected version {STATE_VERSION} of {self.sensor_id!r}"
            )
        try:
            self.last_seq = int(state["last_seq"])
            self.counters = {k: int(state["counters"][k]) for k in self.counters}
            self.batches_since_quality = int(state["batches_since_quality"])
            self.scoring, self.scoring_detail = Scoring(state["scoring"][0]), str(state["scoring"][1])
            ring = state["ring"]
            self.ring = None if ring is None else RingBuffer.from_state(ring)
            trace = state.get("trace")  # absent in snapshots written before traces existed
            self.trace = (
                None if self.ring is None else ForecastTrace.from_state(trace, self.ring.capacity, self.ring.total)
            )
            det = state["detector"]
            if det is None:
                self._detector = None
            else:
                from pdm_ray.detection import streaming as detector

                self._detector = detector.state_from_arrays(det["state"])
                self._detector_offset, self._detector_next = int(det["offset"]), int(det["next"])
            errors = state["errors"]
            self._squared_errors[:] = 0.0
            self._scored_total = int(errors["scored"]) - len(errors["squared"])
            self._remember_squared_errors(np.asarray(errors["squared"], dtype=np.float64))
            drift = state["drift"]
            if drift is None:
                self.drift = None
            else:
                from pdm_ray.drift import DriftMonitor

                self.drift = DriftMonitor.from_state(self.settings.drift, drift)
            quality = state["quality"]
            self.quality = None if quality is None else QualityReport.from_dict(quality)
            self.events.clear()
            self.events.extend(AnomalyEvent(**e) for e in state["events"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"sensor {self.sensor_id}: damaged snapshot state: {exc!r}") from exc
        self.batches_since_snapshot = 0

    def digest(self) -> str:
        """SHA-256 of the replayable state: equal for two sensors fed the same accepted batches."""
        state = self.to_state()
        state["counters"] = {k: v for k, v in state["counters"].items() if k not in _NOT_DIGESTED}
        del state["scoring"]  # why the last batch was (not) scored depends on the forecaster, not the data
        arrays, skeleton = pack_state(state)
        h = hashlib.sha256(json.dumps(skeleton, sort_keys=True).encode())
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()
