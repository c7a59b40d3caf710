"""scoring: one forward pass for many windows gives each window what the core computes for it alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pdm_ray.config import Settings
from pdm_ray.data.normalize import Normalizer
from pdm_ray.detection import detect
from pdm_ray.models import TrainedModel
from pdm_ray.tracking.pyfunc import forecast
from serve_apps.errors import ApiError
from serve_apps.schemas import FLOAT32_MAX
from serve_apps.scoring import (
    ServedModel,
    WindowForecast,
    WindowInput,
    WindowScores,
    forecast_windows,
    score_windows,
    unwrap,
)
from tests.serve_apps.support import L_S, N_PREDICTIONS, serve_settings, sine_series, train_tiny

THRESHOLD = serve_settings(Path("unused")).threshold


def _served(model: TrainedModel) -> ServedModel:
    return ServedModel("pdm-T-1-lstm", "7", model, Normalizer.from_dict(model.normalizer))


def _window(series: np.ndarray) -> WindowInput:
    commands = series[:, 1:] if series.shape[1] > 1 else None
    return WindowInput(values=np.ascontiguousarray(series[:, 0]), commands=commands)


@pytest.fixture(scope="module")
def one_feature(tiny_models: dict[int, TrainedModel]) -> ServedModel:
    return _served(tiny_models[1])


def test_scores_match_the_core_and_sequences_index_the_window(one_feature: ServedModel) -> None:
    series = sine_series(200, seed=3)
    series[150:153, 0] += 40.0  # a spike the threshold must flag
    (scores,) = score_windows(one_feature, [_window(series)], THRESHOLD)
    assert isinstance(scores, WindowScores)
    assert (scores.name, scores.version, scores.l_s) == ("pdm-T-1-lstm", "7", L_S)

    expected_pred = forecast(one_feature.model, series)  # original units, indices l_s .. T-1
    values = series[L_S:, 0]
    expected = detect(expected_pred - values, values, THRESHOLD)
    np.testing.assert_allclose(scores.predictions, expected_pred, rtol=1e-5, atol=1e-5)
    for got, want in [
        (scores.smoothed_errors, expected.smoothed_errors),
        (scores.threshold, expected.threshold),
        (scores.scores, expected.point_scores),
    ]:
        assert got.shape == (200 - L_S,)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert [(a - L_S, b - L_S) for a, b, _ in scores.sequences] == [(s.start, s.end) for s in expected.sequences]
    assert any(a <= 150 <= b for a, b, _ in scores.sequences)  # window indices, not error indices


def test_a_window_shorter_than_the_default_warm_up_can_still_be_flagged(one_feature: ServedModel) -> None:
    series = sine_series(200, seed=3)
    series[150:153, 0] += 40.0
    default_warmup = THRESHOLD.model_copy(update={"warmup": 250})  # more than the window's 170 errors
    (scores,) = score_windows(one_feature, [_window(series)], default_warmup)
    assert any(a <= 150 <= b for a, b, _ in scores.sequences)
    assert len(np.unique(scores.smoothed_errors)) > 1


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(L_S + 1, 120), min_size=1, max_size=8), seed=st.integers(0, 100))
@example(lengths=[120] * 8, seed=0)  # 720 rows: three passes of PREDICT_ROWS
def test_a_batch_equals_its_windows_one_by_one(one_feature: ServedModel, lengths: list[int], seed: int) -> None:
    """Up to 8 windows, so also more rows than one forward pass takes (``scoring.PREDICT_ROWS``)."""
    windows = [_window(sine_series(n, seed=seed + i)) for i, n in enumerate(lengths)]
    together = score_windows(one_feature, windows, THRESHOLD)
    for window, batched in zip(windows, together, strict=True):
        (alone,) = score_windows(one_feature, [window], THRESHOLD)
        # Padded batch shapes differ, so XLA may round differently in the last bits.
        np.testing.assert_allclose(batched.predictions, alone.predictions, rtol=1e-5, atol=1e-5)
        assert [s[:2] for s in batched.sequences] == [s[:2] for s in alone.sequences]
        np.testing.assert_allclose([s[2] for s in batched.sequences], [s[2] for s in alone.sequences], rtol=1e-4)


def test_bad_windows_fail_alone(tiny_models: dict[int, TrainedModel], one_feature: ServedModel) -> None:
    good = _window(sine_series(80))
    short = _window(sine_series(L_S))
    out = score_windows(one_feature, [short, good, short], THRESHOLD)
    assert isinstance(out[1], WindowScores)
    for err in (out[0], out[2]):
        assert isinstance(err, ApiError)
        assert (err.status, err.code, err.field) == (422, "too_few_points", "values")
        assert "at least 31 values (l_s=30), got 30" in err.detail

    with_commands = _served(tiny_models[3])
    (missing,) = score_windows(with_commands, [good], THRESHOLD)
    assert isinstance(missing, ApiError) and missing.field == "commands"
    assert "needs 2 command columns, got 0" in missing.detail
    (extra,) = score_windows(one_feature, [_window(sine_series(80, n_features=3))], THRESHOLD)
    assert isinstance(extra, ApiError) and "needs no command columns, got 2" in extra.detail
    (ok,) = score_windows(with_commands, [_window(sine_series(80, n_features=3))], THRESHOLD)
    assert isinstance(ok, WindowScores)


@pytest.fixture(scope="module")
def transformer() -> ServedModel:
    """A tiny Transformer. Unlike the LSTM, whose gates saturate, it predicts NaN for huge inputs."""
    base = serve_settings(Path("unused")).model_dump(mode="json")
    base["train"]["model"] = "transformer"
    small = {"d_model": 8, "num_heads": 1, "num_layers": 1, "ff_dim": 16, "members": 1}
    base["transformer"] = {**base["transformer"], **small}
    model = train_tiny(Settings.model_validate(base), 1)
    return ServedModel("pdm-T-1-transformer", "1", model, Normalizer.from_dict(model.normalizer))


def test_a_window_the_model_cannot_score_fails_alone(transformer: ServedModel) -> None:
    """Readings at the float32 limit (valid input) make the predictions NaN: that window gets a 422,
    and the window that shares its forward pass is scored as if alone."""
    good = _window(sine_series(80))
    extreme = WindowInput(values=np.full(80, FLOAT32_MAX, np.float32))
    (alone,) = score_windows(transformer, [good], THRESHOLD)
    scored, refused = score_windows(transformer, [good, extreme], THRESHOLD)
    assert isinstance(scored, WindowScores)
    np.testing.assert_allclose(scored.predictions, alone.predictions, rtol=1e-5, atol=1e-5)
    assert isinstance(refused, ApiError)
    assert (refused.status, refused.code, refused.field) == (422, "invalid_input", "values")
    assert "non-finite" in refused.detail

    forecast, refused = forecast_windows(transformer, [good, extreme])
    assert isinstance(forecast, WindowForecast) and np.isfinite(forecast.values).all()
    assert isinstance(refused, ApiError) and (refused.status, refused.code) == (422, "invalid_input")


def test_forecast_is_the_model_output_after_the_last_l_s_points(one_feature: ServedModel) -> None:
    series = sine_series(75, seed=5)
    windows = [WindowInput(series[:, 0], horizon=h) for h in (None, 2)]
    full, short = (unwrap(o) for o in forecast_windows(one_feature, windows))
    expected = forecast(one_feature.model, series[None, -L_S:, :])[0]
    np.testing.assert_allclose(full.values, expected, rtol=1e-5, atol=1e-5)
    assert full.values.shape == (N_PREDICTIONS,)
    np.testing.assert_allclose(short.values, expected[:2], rtol=1e-5, atol=1e-5)


def test_forecast_refuses_long_horizons_and_short_windows(one_feature: ServedModel) -> None:
    too_far, too_short = forecast_windows(
        one_feature,
        [WindowInput(sine_series(40)[:, 0], horizon=N_PREDICTIONS + 1), WindowInput(sine_series(L_S - 1)[:, 0])],
    )
    assert isinstance(too_far, ApiError) and (too_far.code, too_far.field) == ("horizon_too_large", "horizon")
    assert isinstance(too_short, ApiError) and (too_short.code, too_short.field) == ("too_few_points", "values")
    with pytest.raises(ApiError, match="horizon 6 exceeds"):
        unwrap(too_far)
