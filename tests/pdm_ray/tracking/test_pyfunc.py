from __future__ import annotations

import logging
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from pdm_ray.data.channels import Channel
from pdm_ray.data.normalize import Normalizer
from pdm_ray.data.windows import make_windows
from pdm_ray.errors import DataError, InsufficientDataError
from pdm_ray.models import TrainedModel, predict
from pdm_ray.tracking.pyfunc import forecast, load_forecaster, save_pyfunc

from .conftest import L_S, N_PRED


def test_forecast_normalizes_inputs_and_returns_original_units(good_model: TrainedModel, channel: Channel) -> None:
    x, _ = make_windows(channel.test, L_S, N_PRED)
    norm = Normalizer.from_dict(good_model.normalizer)
    by_hand = norm.inverse_value(predict(good_model, norm.transform(x.reshape(-1, 2)).reshape(x.shape)))
    out = forecast(good_model, x)
    assert out.shape == (len(x), N_PRED) and out.dtype == np.float32
    np.testing.assert_allclose(out, by_hand, rtol=1e-6)
    # Raw telemetry sits around 10; forecasts in original units must too.
    assert 5.0 < float(out.mean()) < 15.0


def test_series_forecast_is_the_first_step_of_each_window(good_model: TrainedModel, channel: Channel) -> None:
    series = channel.test[:60]
    one_step = forecast(good_model, series)
    assert one_step.shape == (60 - L_S,)
    windows = np.stack([series[i : i + L_S] for i in range(60 - L_S)])
    np.testing.assert_allclose(one_step, forecast(good_model, windows)[:, 0], rtol=1e-5, atol=1e-5)


def test_forecast_rejects_bad_shapes(good_model: TrainedModel) -> None:
    with pytest.raises(DataError, match="got shape"):
        forecast(good_model, np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(InsufficientDataError):
        forecast(good_model, np.zeros((L_S, 2), np.float32))


def test_saved_pyfunc_predicts_like_the_model_from_a_dataframe(
    good_model: TrainedModel, channel: Channel, tmp_path: Path
) -> None:
    path = save_pyfunc(good_model, tmp_path / "model")
    assert not list(path.rglob("*.pkl")), "nothing may be pickled"
    loaded = mlflow.pyfunc.load_model(str(path))
    frame = pd.DataFrame(channel.test[:50], columns=["value", "cmd"])
    np.testing.assert_allclose(loaded.predict(frame), forecast(good_model, channel.test[:50]), rtol=1e-6)
    restored = load_forecaster(str(path))
    assert restored.spec == good_model.spec and restored.normalizer == good_model.normalizer


def test_saving_does_not_warn_that_predict_has_no_signature(good_model: TrainedModel, tmp_path: Path) -> None:
    # One signature cannot describe both windows and a series, so none is inferred on purpose.
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    mlflow_logger = logging.getLogger("mlflow.pyfunc")
    mlflow_logger.addHandler(handler)
    try:
        save_pyfunc(good_model, tmp_path / "model")
    finally:
        mlflow_logger.removeHandler(handler)
    assert not [m for m in seen if "infer model signature" in m]
    assert not mlflow_logger.filters  # the filter lives for the save only
    assert (tmp_path / "model" / "MLmodel").is_file()
