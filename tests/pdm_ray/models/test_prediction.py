"""Prediction: batching does not change results, one-step alignment, bad input."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from pdm_ray.data.windows import make_windows
from pdm_ray.errors import DataError, InsufficientDataError, ModelNotTrainedError
from pdm_ray.models import TrainedModel, predict, predict_series

Windows = tuple[np.ndarray, np.ndarray]


def test_batch_size_does_not_change_predictions(windows: Windows, trained_lstm: TrainedModel) -> None:
    x, _ = windows
    full = predict(trained_lstm, x)
    assert full.shape == (len(x), trained_lstm.spec.n_predictions) and full.dtype == np.float32
    # 278 windows in padded batches of 64 (the last one has 22 real windows).
    np.testing.assert_allclose(predict(trained_lstm, x, batch_size=64), full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict(trained_lstm, x[5:6])[0], full[5], rtol=1e-5, atol=1e-6)


def test_predict_series_is_one_step_ahead(trained_lstm: TrainedModel, sine_series: Callable[..., np.ndarray]) -> None:
    series = sine_series(100, seed=3)
    l_s = trained_lstm.spec.l_s
    out = predict_series(trained_lstm, series)
    assert out.shape == (100 - l_s,) and out.dtype == np.float32
    # Element i is the first forecast of the window series[i : i + l_s], i.e. of index l_s + i.
    x, _ = make_windows(series, l_s, trained_lstm.spec.n_predictions)
    np.testing.assert_allclose(out[: len(x)], predict(trained_lstm, x)[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[-1], predict(trained_lstm, series[None, -l_s - 1 : -1])[0, 0], rtol=1e-5, atol=1e-6)


def test_bad_input(trained_lstm: TrainedModel, sine_series: Callable[..., np.ndarray]) -> None:
    with pytest.raises(InsufficientDataError, match="length 20 is too short"):
        predict_series(trained_lstm, sine_series(20))
    with pytest.raises(DataError, match="has 1 features but the model expects n_features=2"):
        predict_series(trained_lstm, np.zeros((50, 1)))
    with pytest.raises(DataError, match="batch_size must be a positive integer, got 0"):
        predict(trained_lstm, np.zeros((3, 20, 2)), batch_size=0)
    with pytest.raises(ModelNotTrainedError, match="no parameters"):
        predict(dataclasses.replace(trained_lstm, params=None), np.zeros((3, 20, 2)))
