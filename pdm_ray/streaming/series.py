"""What a sensor's stream can show an operator: per-reading forecasts, smoothed errors, thresholds.

The ring buffer (``pdm_ray.streaming.ring``) holds the readings; ``ForecastTrace`` holds,
for the same readings (same capacity, same absolute indices), the one-step forecast the
sensor was scored with and the smoothed error the streaming detector judged, NaN where a
reading was never scored. The threshold is not stored: the epsilon that judged a point
depends only on the smoothed errors of its window (Hundman et al. 2018, arXiv:1802.04431,
section 3.2; ``pdm_ray.detection.threshold.find_epsilon``), so ``judging_thresholds``
recomputes it from the trace when someone looks, keeping the ingest path as it was.

The detection modules pull in scipy; they are imported inside the functions that need
them, like ``pdm_ray.streaming.sensor`` does, so an idle sensor actor stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pdm_ray.config import ThresholdSettings
from pdm_ray.errors import DataError

if TYPE_CHECKING:
    from pdm_ray.detection.streaming import StreamState


class ForecastTrace:
    """Forecast and smoothed error of the last ``capacity`` readings, float32 ``[capacity]`` each.

    Indices are absolute reading indices, as in ``RingBuffer``: ``extend(n)`` makes room for
    the next ``n`` readings (unscored: NaN) and ``put`` fills in readings still held.
    """

    def __init__(self, capacity: int, total: int = 0) -> None:
        if capacity <= 0 or total < 0:
            raise DataError(f"forecast trace needs capacity > 0 and total >= 0, got {capacity}, {total}")
        self.capacity = capacity
        self.total = total  # readings ever added; the next one gets this index
        self._forecast = np.full(capacity, np.nan, dtype=np.float32)
        self._smoothed = np.full(capacity, np.nan, dtype=np.float32)

    def _held(self, start: int, stop: int) -> tuple[int, int]:
        """``[start, stop)`` clipped to the indices still held."""
        return max(start, self.total - self.capacity, 0), min(stop, self.total)

    def extend(self, n: int) -> None:
        """Add ``n`` unscored readings, dropping the oldest beyond capacity."""
        lo = max(self.total, self.total + n - self.capacity)
        slots = np.arange(lo, self.total + n) % self.capacity
        self._forecast[slots] = np.nan
        self._smoothed[slots] = np.nan
        self.total += n

    def put(
        self,
        first: int,
        forecast: npt.NDArray[np.float32] | None = None,
        smoothed: npt.NDArray[np.float32] | None = None,
    ) -> None:
        """Write values ``[k]`` for readings ``first .. first + k - 1``; readings no longer held are skipped."""
        for target, data in ((self._forecast, forecast), (self._smoothed, smoothed)):
            if data is None:
                continue
            lo, hi = self._held(first, first + data.shape[0])
            if hi > lo:
                target[np.arange(lo, hi) % self.capacity] = data[lo - first : hi - first]

    def window(self, start: int, stop: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Forecasts and smoothed errors of readings ``[start, stop)``, ``[stop - start]`` each, NaN where not held."""
        forecast = np.full(max(stop - start, 0), np.nan, dtype=np.float32)
        smoothed = forecast.copy()
        lo, hi = self._held(start, stop)
        if hi > lo:
            slots = np.arange(lo, hi) % self.capacity
            forecast[lo - start : hi - start] = self._forecast[slots]
            smoothed[lo - start : hi - start] = self._smoothed[slots]
        return forecast, smoothed

    def to_state(self, n: int) -> dict[str, Any]:
        """The newest ``n`` readings' entries in time order (``n`` = the ring's buffered count)."""
        forecast, smoothed = self.window(self.total - n, self.total)
        return {"total": self.total, "forecast": forecast, "smoothed": smoothed}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, capacity: int, total: int) -> ForecastTrace:
        """Inverse of ``to_state``; None (a snapshot written before traces existed) gives an all-NaN trace.

        Raises:
            DataError: the trace does not end at reading ``total`` or its arrays differ in length.
        """
        trace = cls(capacity, total)
        if state is None:
            return trace
        forecast = np.asarray(state["forecast"], dtype=np.float32)
        smoothed = np.asarray(state["smoothed"], dtype=np.float32)
        if int(state["total"]) != total or forecast.shape != smoothed.shape or forecast.ndim != 1:
            raise DataError(
                f"forecast trace of {forecast.shape}/{smoothed.shape} entries ending at reading {state['total']} "
                f"does not fit a ring ending at reading {total}"
            )
        trace.put(total - forecast.shape[0], forecast, smoothed)
        return trace


def traced_smoothing(before: StreamState, errors: npt.NDArray[np.float32]) -> tuple[int, npt.NDArray[np.float32]]:
    """The smoothed errors the streaming detector will judge, for the points of its next update.

    Computed as ``update_stream`` does (EWMA from the state's carry); the update that
    completes the first window also flattens the first ``warmup`` values
    (``apply_warmup``), so then the result starts at detector index 0.

    Args:
        before: the detector state the update starts from.
        errors: raw prediction errors of the new points ``[m]``.

    Returns:
        The detector index of the first value and the smoothed errors, float32.
    """
    from pdm_ray.detection.smoothing import apply_warmup, as_series, ewma, ewma_span
    from pdm_ray.detection.streaming import judged_frontier

    config = before.config
    new, _ = ewma(np.abs(as_series(errors, "errors")), ewma_span(config), before.carry)
    if before.judged == 0 and judged_frontier(before.seen + new.size, config) > 0:
        return 0, apply_warmup(np.concatenate([before.smoothed, new]), config.warmup)
    return before.seen, new


def judging_thresholds(
    smoothed: npt.NDArray[np.float32], first: int, judged: int, config: ThresholdSettings
) -> npt.NDArray[np.float32]:
    """The epsilon of the threshold window that judged each point (Telemanom's dynamic threshold).

    Windows are the streaming detector's: ``h = batch_size * window_size`` points ending at
    ``h, h + batch_size, ...``; the first judges points ``[0, h)``, each later one its last
    ``batch_size``. A window without a candidate shows ``mean + z_max * std``, as
    ``threshold.detect`` does.

    Args:
        smoothed: smoothed errors ``[k]`` of detector indices ``first .. first + k - 1``
            (NaN where unknown).
        first: detector index of ``smoothed[0]`` (negative: points before the detector started).
        judged: how many points the detector has judged (``StreamState.judged``).
        config: the detector's threshold settings.

    Returns:
        float32 ``[k]``; NaN for points not judged yet, before the detector, or whose window
        is not wholly in ``smoothed``.
    """
    from pdm_ray.detection.threshold import find_epsilon

    out = np.full(smoothed.shape[0], np.nan, dtype=np.float32)
    bs, h = config.batch_size, config.batch_size * config.window_size
    j = np.arange(first, first + smoothed.shape[0])
    ok = (j >= 0) & (j < judged)
    ends = np.where(j < h, h, h + ((j - h) // bs + 1) * bs)
    for end in np.unique(ends[ok]):
        lo, hi = int(end) - h - first, int(end) - first
        if lo < 0 or hi > smoothed.shape[0]:
            continue
        window = smoothed[lo:hi].astype(np.float64)
        if np.isnan(window).any():
            continue
        epsilon = find_epsilon(window, config)
        out[ok & (ends == end)] = window.mean() + config.z_max * window.std() if epsilon is None else epsilon
    return out


def _nullable(values: npt.NDArray[np.floating]) -> list[float | None]:
    """Floats as JSON numbers, NaN as null."""
    return np.where(np.isnan(values), None, values.astype(object)).tolist()


@dataclass(frozen=True)
class SeriesEvent:
    """An anomalous sequence overlapping a ``SensorSeries``.

    Attributes:
        start, end: inclusive absolute reading indices.
        start_time, end_time: timestamps of the part inside the series (clipped to it).
        score: Telemanom's score of the sequence.
        final: False for the sequence still open at the detector's judged frontier (it may grow).
    """

    start: int
    end: int
    start_time: float
    end_time: float
    score: float
    final: bool


@dataclass(frozen=True)
class SensorSeries:
    """The newest readings of a sensor with what the stream made of them (arrays ``[k]``).

    Attributes:
        sensor_id: the sensor.
        first_index: absolute reading index of the first entry.
        timestamps: float64 reading times.
        values: float32 channel 0 (the telemetry value).
        forecast: float32 one-step forecasts the readings were scored with (NaN: not scored).
        smoothed_errors: float32 smoothed absolute errors the detector judged (NaN: not scored).
        threshold: float32 epsilon of the window that judged each point (NaN: not judged yet).
        events: anomalous sequences overlapping the series, oldest first.
    """

    sensor_id: str
    first_index: int
    timestamps: npt.NDArray[np.float64] = field(repr=False)
    values: npt.NDArray[np.float32] = field(repr=False)
    forecast: npt.NDArray[np.float32] = field(repr=False)
    smoothed_errors: npt.NDArray[np.float32] = field(repr=False)
    threshold: npt.NDArray[np.float32] = field(repr=False)
    events: tuple[SeriesEvent, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists of numbers with NaN as null."""
        return {
            "sensor_id": self.sensor_id,
            "first_index": self.first_index,
            "n": int(self.timestamps.shape[0]),
            "timestamps": self.timestamps.tolist(),
            "values": self.values.tolist(),
            "forecast": _nullable(self.forecast),
            "smoothed_errors": _nullable(self.smoothed_errors),
            "threshold": _nullable(self.threshold),
            "events": [vars(e) for e in self.events],
        }


def overlapping_events(
    intervals: list[tuple[int, int, float, bool]], first: int, timestamps: npt.NDArray[np.float64]
) -> tuple[SeriesEvent, ...]:
    """The ``(start, end, score, final)`` sequences overlapping readings ``first .. first + k - 1``.

    ``timestamps`` ``[k]`` are those readings' times; an event's times are clipped to them.
    """
    last = first + timestamps.shape[0] - 1
    return tuple(
        SeriesEvent(
            start,
            end,
            float(timestamps[max(start, first) - first]),
            float(timestamps[min(end, last) - first]),
            score,
            final,
        )
        for start, end, score, final in intervals
        if end >= first and start <= last
    )
