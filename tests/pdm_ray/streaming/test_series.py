"""The per-reading trace of forecasts, smoothed errors and thresholds (``SensorStream.series``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pdm_ray.detection.threshold import detect
from pdm_ray.errors import DataError
from pdm_ray.streaming.sensor import SensorStream, StreamSettings
from pdm_ray.streaming.series import ForecastTrace, judging_thresholds

from .conftest import L_S, make_batches, persistence, stream_settings

H = 30  # threshold windows of the test settings: 3 x 10


def feed(stream: SensorStream, batches: list) -> dict[int, float]:
    """Feed with persistence forecasts; returns {reading index: forecast}."""
    forecasts: dict[int, float] = {}
    for batch in batches:
        request = stream.apply(stream.admit(batch))
        if request is not None:
            preds = stream.check_predictions(request, persistence(request.window))
            stream.apply_predictions(request, preds)
            indices = range(request.first_index, request.first_index + len(preds))
            forecasts.update(zip(indices, preds.tolist(), strict=True))
    return forecasts


def test_trace_by_hand() -> None:
    trace = ForecastTrace(4)
    trace.extend(3)
    trace.put(1, forecast=np.array([10.0, 11.0], np.float32), smoothed=np.array([0.5, 0.75], np.float32))
    forecast, smoothed = trace.window(0, 3)
    np.testing.assert_array_equal(forecast, [np.nan, 10.0, 11.0])
    np.testing.assert_array_equal(smoothed, [np.nan, 0.5, 0.75])
    trace.extend(3)  # readings 3..5; 0 and 1 drop out
    trace.put(3, forecast=np.array([13.0, 14.0, 15.0], np.float32))
    forecast, smoothed = trace.window(0, 6)
    np.testing.assert_array_equal(forecast, [np.nan, np.nan, 11.0, 13.0, 14.0, 15.0])
    np.testing.assert_array_equal(smoothed, [np.nan, np.nan, 0.75, np.nan, np.nan, np.nan])
    trace.put(0, forecast=np.array([1.0, 2.0], np.float32))  # no longer held: nothing changes
    np.testing.assert_array_equal(trace.window(0, 6)[0], forecast)


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(1, 12),
    steps=st.lists(st.tuples(st.integers(1, 15), st.integers(0, 15)), min_size=1, max_size=8),
)
def test_trace_holds_exactly_the_newest_capacity_readings(capacity: int, steps: list[tuple[int, int]]) -> None:
    trace, expected = ForecastTrace(capacity), {}
    for n, back in steps:
        trace.extend(n)
        first = max(trace.total - back, 0)
        values = np.arange(first, trace.total, dtype=np.float32)
        trace.put(first, forecast=values)
        expected.update({i: float(i) for i in range(first, trace.total)})
    total = trace.total
    want = [expected.get(i, np.nan) if i >= total - capacity else np.nan for i in range(total)]
    np.testing.assert_array_equal(trace.window(0, total)[0], np.array(want, np.float32))
    restored = ForecastTrace.from_state(trace.to_state(min(total, capacity)), capacity, total)
    np.testing.assert_array_equal(restored.window(0, total)[0], trace.window(0, total)[0])


def test_smoothed_errors_and_thresholds_equal_the_batch_detector() -> None:
    settings = stream_settings()
    n = L_S + H + 120  # 150 scored readings: (150 - h) is a multiple of batch_size, so all are judged
    batches = make_batches(n, [7, 30, 1, 13], spike_at=100)
    stream = SensorStream("A-2", settings)
    forecasts = feed(stream, batches)
    values = np.concatenate([b.values[:, 0] for b in batches])
    errors = np.array([forecasts[i] for i in range(L_S, n)], np.float32) - values[L_S:]
    batch = detect(errors, values[L_S:], settings.threshold)

    series = stream.series(1_000)
    assert (series.first_index, series.timestamps.shape[0]) == (0, n)
    np.testing.assert_array_equal(series.values, values)
    assert np.isnan(series.forecast[:L_S]).all() and np.isnan(series.threshold[:L_S]).all()
    np.testing.assert_array_equal(series.forecast[L_S:], [forecasts[i] for i in range(L_S, n)])
    np.testing.assert_allclose(series.smoothed_errors[L_S:], batch.smoothed_errors, rtol=1e-6)
    np.testing.assert_allclose(series.threshold[L_S:], batch.threshold, rtol=1e-6)
    found = [(s.start + L_S, s.end + L_S) for s in batch.sequences]
    assert [(e.start, e.end) for e in series.events if e.final] == found
    assert any(e.start <= 100 <= e.end for e in series.events)
    body = series.to_dict()
    assert body["forecast"][:L_S] == [None] * L_S and body["n"] == n
    assert body["threshold"][L_S] == pytest.approx(float(batch.threshold[0]), rel=1e-6)


def test_thresholds_need_the_whole_window() -> None:
    smoothed = np.arange(1, 41, dtype=np.float32)  # detector indices 0..39
    cfg = stream_settings().threshold
    judged = judging_thresholds(smoothed, first=0, judged=40, config=cfg)
    assert not np.isnan(judged).any()
    assert judged[0] == judged[29] and judged[30] == judged[39] and judged[29] != judged[30]
    late = judging_thresholds(smoothed[5:], first=5, judged=40, config=cfg)
    assert np.isnan(late[:25]).all()  # the first window [0, 30) is not wholly there
    np.testing.assert_array_equal(late[25:], judged[30:])
    assert np.isnan(judging_thresholds(smoothed, first=0, judged=30, config=cfg)[30:]).all()  # not judged yet


def test_a_short_buffer_keeps_forecasts_aligned(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", stream_settings(buffer_size=50, quality_window=20, drift_reference_size=40))
    forecasts = feed(stream, make_batches(155, [20]))
    series = stream.series(500)
    assert (series.first_index, series.forecast.shape[0]) == (105, 50)
    np.testing.assert_array_equal(series.forecast, [forecasts[i] for i in range(105, 155)])
    assert np.isnan(series.threshold[: H - 10]).all()  # their windows reach before the buffer
    assert not np.isnan(series.threshold[-10:]).any()


def test_series_survives_a_snapshot_and_old_snapshots_still_load(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    feed(stream, make_batches(120, [30], spike_at=90))
    state = stream.to_state()
    copy = SensorStream("A-2", settings)
    copy.load_state(state)
    for name in ("forecast", "smoothed_errors", "threshold", "values"):
        np.testing.assert_array_equal(getattr(copy.series(200), name), getattr(stream.series(200), name))

    del state["trace"]  # as written before the trace existed
    old = SensorStream("A-2", settings)
    old.load_state(state)
    assert old.status().readings == 120 and np.isnan(old.series(200).forecast).all()
    feed(old, make_batches(150, [30])[4:])
    assert not np.isnan(old.series(30).forecast).any()


def test_series_arguments(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    empty = stream.series(10)
    assert empty.timestamps.shape == (0,) and empty.events == ()
    with pytest.raises(DataError, match="series length must be positive, got 0"):
        stream.series(0)
