"""The benchmark's per-channel unit: stored forecasts re-score to the run's own results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pdm_ray.benchmark.channel import detect_channel, run_channel, validation_start
from pdm_ray.config import Settings
from pdm_ray.data.channels import load_channel
from pdm_ray.errors import DataError

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


@pytest.fixture(scope="module")
def small_run():
    settings = Settings.model_validate(
        {
            "lstm": {"layers": [8], "dropout": 0.0},
            "transformer": {"d_model": 8, "num_heads": 2, "num_layers": 1, "ff_dim": 16, "dropout": 0.0},
            "train": {"epochs": 1, "patience": 1},
        }
    )
    channel = load_channel(SAMPLE, "A-5")
    return channel, settings, run_channel(channel, settings, "ensemble")


@pytest.mark.slow
def test_stored_forecasts_rescore_to_the_same_results(small_run) -> None:
    channel, settings, run = small_run
    val_losses = {r.model: r.val_loss for r in run.results if r.model != "ensemble"}
    seconds = {r.model: r.train_seconds for r in run.results if r.model != "ensemble"}
    again = detect_channel(channel, settings, "ensemble", run.predictions, val_losses, seconds)
    assert [r.model for r in again] == ["lstm", "transformer", "ensemble"]
    assert again == run.results  # same sequences, scores and counts, field for field
    # the threshold config given is the one applied: errors below its minimum scale flag nothing
    assert any(r.sequences for r in run.results)
    mute = settings.model_copy(update={"threshold": settings.threshold.model_copy(update={"min_error_scale": 1e9})})
    assert all(not r.sequences for r in detect_channel(channel, mute, "ensemble", run.predictions, val_losses, seconds))


@pytest.mark.slow
def test_forecasts_of_the_wrong_length_are_refused(small_run) -> None:
    channel, settings, run = small_run
    short = {"lstm": run.predictions["lstm"][:-1]}
    with pytest.raises(DataError, match="lstm forecasts have shape"):
        detect_channel(channel, settings, "lstm", short, {"lstm": 0.1}, {"lstm": 1.0})
    lstm_only = {"lstm": run.predictions["lstm"]}  # an lstm run's forecasts, scored as an ensemble
    with pytest.raises(DataError, match="needs transformer forecasts"):
        detect_channel(channel, settings, "ensemble", lstm_only, {"lstm": 0.1}, {"lstm": 1.0})


@pytest.mark.slow
def test_validation_forecasts_cover_only_targets_no_training_window_had(small_run) -> None:
    channel, settings, run = small_run
    l_s, n_pred = settings.windows.l_s, settings.windows.n_predictions
    n_windows = len(channel.train) - l_s - n_pred + 1
    n_val = round(n_windows * settings.train.validation_split)
    last_fitted_target = (n_windows - n_val - 1) + l_s + n_pred - 1  # last target of the last training window
    assert validation_start(channel, settings) + l_s == last_fitted_target + 1
    for kind in ("lstm", "transformer"):
        held_out = run.predictions[f"{kind}_validation"]
        assert held_out.shape == (n_val,)  # one forecast per train index from the first unseen target to the end
        assert held_out.dtype == np.float32 and np.isfinite(held_out).all()
