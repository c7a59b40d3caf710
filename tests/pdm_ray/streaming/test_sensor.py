import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pdm_ray.config import ActorsSettings, DriftSettings, QualitySettings, ThresholdSettings
from pdm_ray.detection.streaming import init_stream, update_stream
from pdm_ray.errors import ConfigError, DataError, InsufficientDataError, InvalidBatchError, OutOfOrderBatchError
from pdm_ray.streaming.batch import Batch
from pdm_ray.streaming.sensor import Scoring, SensorStream, StreamSettings

from .conftest import L_S, make_batches, persistence, stream_settings


def feed(stream: SensorStream, batches: list[Batch], score: bool = True) -> list:
    events = []
    for batch in batches:
        admitted = stream.admit(batch)
        assert admitted is not None
        request = stream.apply(admitted)
        if request is not None and score:
            preds = stream.check_predictions(request, persistence(request.window))
            events += stream.apply_predictions(request, preds)
    return events


def test_scoring_waits_for_l_s_readings_then_predicts_exactly_the_new_ones(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    b0, b1 = make_batches(6, [2, 4])
    assert stream.apply(stream.admit(b0)) is None
    assert stream.scoring == Scoring.WARMING_UP
    request = stream.apply(stream.admit(b1))
    # 2 readings of history + 4 new; readings 5 is the first with L_S = 5 before it.
    assert request is not None
    assert request.first_index == 5 and request.seq == 1
    assert request.window.shape == (L_S + 1, 2)
    np.testing.assert_array_equal(request.window, np.concatenate([b0.values, b1.values]))
    np.testing.assert_array_equal(request.targets, b1.values[-1:, 0])


def test_a_later_batch_carries_l_s_rows_of_history(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    b0, b1 = make_batches(20, [12, 8])
    stream.apply(stream.admit(b0))
    request = stream.apply(stream.admit(b1))
    assert request.first_index == 12
    np.testing.assert_array_equal(request.window, np.concatenate([b0.values[-L_S:], b1.values]))


def test_duplicates_and_invalid_batches_change_nothing(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    batches = make_batches(30, [10])
    feed(stream, batches[:2])
    before = stream.digest()
    assert stream.admit(batches[1]) is None
    assert stream.admit(batches[0]) is None
    wrong_width = Batch(5, np.array([1e6]), np.zeros((1, 3), np.float32))
    with pytest.raises(InvalidBatchError, match="3 features, the sensor has 2"):
        stream.admit(wrong_width)
    going_back = Batch(5, batches[1].timestamps[-1:], batches[1].values[-1:])
    with pytest.raises(InvalidBatchError, match=r"not after the last accepted timestamp 119\.0"):
        stream.admit(going_back)
    with pytest.raises(InvalidBatchError, match="non-finite"):
        stream.admit({"seq": 9, "timestamps": [1e6], "values": [[np.nan, 0.0]]})
    with pytest.raises(OutOfOrderBatchError, match="expects batch 2 next, got 3"):
        stream.admit(make_batches(40, [10])[3])
    status = stream.status()
    assert (status.duplicates, status.rejected, status.batches, status.readings) == (2, 4, 2, 20)
    assert stream.digest() == before


def test_the_first_batch_is_seq_0(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    with pytest.raises(OutOfOrderBatchError, match="expects batch 0 next, got 1"):
        stream.admit(make_batches(20, [10])[1])
    assert stream.admit(make_batches(20, [10])[0]) is not None


def test_events_are_the_detector_sequences_in_reading_indices(settings: StreamSettings) -> None:
    batches = make_batches(200, [17, 23], spike_at=120)
    stream = SensorStream("A-2", settings)
    events = feed(stream, batches)
    # The same errors straight into the detector: reading index = detector index + L_S.
    values = np.concatenate([b.values for b in batches])
    errors = values[L_S - 1 : -1, 0] - values[L_S:, 0]
    state = init_stream(settings.threshold)
    state, expected = update_stream(state, errors, values[L_S:, 0])
    assert expected, "the spike must be detected"
    assert [(e.start, e.end) for e in events] == [(s.start + L_S, s.end + L_S) for s in expected]
    assert [e.score for e in events] == pytest.approx([s.score for s in expected])
    assert any(e.start <= 120 <= e.end + 3 for e in events)
    first = events[0]
    assert first.start_time == 100.0 + first.start and first.end_time == 100.0 + first.end
    status = stream.status()
    assert status.scoring == Scoring.SCORING and status.scored == 200 - L_S
    assert status.events == len(events) and stream.recent(1) == events[-1:]


def test_a_scoring_gap_restarts_the_detector(settings: StreamSettings) -> None:
    batches = make_batches(100, [20])
    stream = SensorStream("A-2", settings)
    feed(stream, batches[:2])
    feed(stream, batches[2:3], score=False)  # e.g. the model was missing for this batch
    request = stream.apply(stream.admit(batches[3]))
    stream.apply_predictions(request, stream.check_predictions(request, persistence(request.window)))
    detector_state = stream.to_state()["detector"]
    assert detector_state["offset"] == 60 and detector_state["next"] == 80
    assert stream.status().scored == 35 + 20


def test_predictions_are_checked(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    request = stream.apply(stream.admit(make_batches(8, [8])[0]))
    assert stream.check_predictions(request, np.arange(5.0)).tolist() == [2.0, 3.0, 4.0]  # the last m = 3
    with pytest.raises(DataError, match="expected at least 3 numbers"):
        stream.check_predictions(request, np.zeros(2))
    with pytest.raises(DataError, match="non-finite"):
        stream.check_predictions(request, [0.0, np.inf, 0.0])


def test_drift_reference_then_monitoring_and_reset(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    batches = make_batches(100, [10])
    feed(stream, batches[:3], score=False)
    assert stream.drift is None and stream.status().drift is None
    feed(stream, batches[3:4], score=False)
    assert stream.drift is not None and stream.drift.reference.values.shape == (40,)
    assert stream.status().drift is None  # the current window needs drift.min_samples = 20 points
    feed(stream, batches[4:6], score=False)
    assert stream.status().drift_severity is not None
    assert stream.reset_reference(np.linspace(0.0, 1.0, 25)) == 25
    with pytest.raises(InsufficientDataError):
        stream.reset_reference(np.zeros(3))
    with pytest.raises(InsufficientDataError, match="no readings"):
        SensorStream("B-1", settings).reset_reference()


def test_quality_is_assessed_on_its_cadence(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    batches = make_batches(40, [10])
    feed(stream, batches[:1], score=False)
    assert stream.quality is None
    feed(stream, batches[1:2], score=False)
    assert stream.quality is not None and stream.quality.n_steps == 20
    assert stream.status().quality in {"excellent", "good", "fair", "poor", "critical"}


def test_settings_must_fit_the_window() -> None:
    with pytest.raises(ConfigError, match="buffer_size"):
        StreamSettings(
            ActorsSettings(buffer_size=100, quality_window=50, drift_reference_size=50),
            ThresholdSettings(),
            DriftSettings(),
            QualitySettings(),
            l_s=250,
        )
    with pytest.raises(ConfigError, match="drift_reference_size"):
        stream_settings(drift_reference_size=10)


def test_state_round_trip_keeps_the_digest(settings: StreamSettings) -> None:
    stream = SensorStream("A-2", settings)
    feed(stream, make_batches(150, [30], spike_at=100))
    copy = SensorStream("A-2", settings)
    copy.load_state(stream.to_state())
    assert copy.digest() == stream.digest()
    assert copy.status() == stream.status()
    with pytest.raises(DataError, match="of sensor 'A-2', expected version 1 of 'B-1'"):
        SensorStream("B-1", settings).load_state(stream.to_state())


@hypothesis_settings(max_examples=15, deadline=None)
@given(cut=st.integers(1, 11), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4))
def test_restoring_mid_stream_equals_never_stopping(cut: int, sizes: list[int]) -> None:
    settings = stream_settings()
    batches = make_batches(220, sizes, spike_at=150)
    cut = min(cut, len(batches) - 1)
    reference = SensorStream("A-2", settings)
    feed(reference, batches)
    first = SensorStream("A-2", settings)
    feed(first, batches[:cut])
    second = SensorStream("A-2", settings)
    second.load_state(first.to_state())
    feed(second, batches[cut:])
    assert second.digest() == reference.digest()
    assert second.recent(100) == reference.recent(100)


def test_rolling_mse_is_the_mean_of_the_last_error_window_squared_errors() -> None:
    settings = stream_settings(error_window=50)
    batches = make_batches(130, [17, 23])
    stream = SensorStream("A-2", settings)
    assert stream.status().rolling_mse is None and stream.status().rolling_points == 0
    feed(stream, batches)
    values = np.concatenate([b.values for b in batches])[:, 0]
    squared = np.square(values[L_S - 1 : -1] - values[L_S:])
    status = stream.status()
    assert status.rolling_points == 50
    assert status.rolling_mse == pytest.approx(float(np.mean(squared[-50:])), rel=1e-5)
    restored = SensorStream("A-2", settings)
    restored.load_state(stream.to_state())
    assert restored.status().rolling_mse == status.rolling_mse and restored.digest() == stream.digest()


def test_a_huge_finite_reading_keeps_rolling_mse_finite_and_a_new_model_starts_it_afresh() -> None:
    stream = SensorStream("A-2", stream_settings(error_window=50))
    batches = make_batches(60, [20])
    batches[-1].values[-1, 0] = 1e20  # finite in float32; its square is not
    feed(stream, batches)
    assert stream.status().rolling_mse is not None and np.isfinite(stream.status().rolling_mse)
    stream.forget_errors()
    assert (stream.status().rolling_mse, stream.status().rolling_points) == (None, 0)
    restored = SensorStream("A-2", stream.settings)
    restored.load_state(stream.to_state())
    assert restored.status().rolling_points == 0
