"""Helpers of the serve tests: tiny settings, a synthetic series, training and registering models."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pdm_ray.config import NormalizeSettings, Settings, load_settings
from pdm_ray.data.normalize import fit_normalizer
from pdm_ray.data.windows import make_windows
from pdm_ray.models import ModelSpec, TrainedModel, train
from pdm_ray.tracking.registry import PRODUCTION, VersionInfo, model_name, register_version
from pdm_ray.tracking.runs import Tracking

L_S = 30
N_PREDICTIONS = 5


def serve_settings(home: Path, **serve: object) -> Settings:
    """Default settings with ``home`` (the MLflow store lives there), tiny windows and ``serve`` overrides."""
    base = load_settings(env={}).model_dump(mode="json")
    base["home"] = str(home)
    base["windows"] = {"l_s": L_S, "n_predictions": N_PREDICTIONS}
    base["lstm"] = {"layers": [8], "dropout": 0.0}
    base["train"] = {**base["train"], "epochs": 1, "batch_size": 64, "patience": 1}
    base["ray"] = {**base["ray"], "namespace": "pdm-test"}
    # Short request windows: threshold windows of 5 x 20 errors, a short EWMA warm-up.
    base["threshold"] = {
        **base["threshold"],
        "batch_size": 20,
        "window_size": 5,
        "error_buffer": 3,
        "warmup": 10,
        "ignore_first": 10,
    }
    base["threshold"]["smoothing_perc"] = 0.1
    base["serve"] = {**base["serve"], "replica_num_cpus": 0.1, **serve}
    return Settings.model_validate(base)


def sine_series(n: int, n_features: int = 1, seed: int = 0) -> npt.NDArray[np.float32]:
    """``[n, F]``: a noisy sine around 5 (amplitude 2) and ``F - 1`` sparse 0/1 command columns."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    value = 5.0 + 2.0 * np.sin(t / 8.0) + 0.05 * rng.standard_normal(n)
    commands = (rng.random((n, n_features - 1)) < 0.1).astype(np.float64)
    return np.column_stack([value, commands]).astype(np.float32)


def train_tiny(settings: Settings, n_features: int) -> TrainedModel:
    """An LSTM trained one epoch on a normalized sine series, carrying its normalizer."""
    series = sine_series(600, n_features)
    normalizer = fit_normalizer(series, NormalizeSettings())
    X, y = make_windows(normalizer.transform(series), L_S, N_PREDICTIONS)
    model = train(ModelSpec.from_settings(settings, n_features), settings.train, X, y)
    return replace(model, normalizer=normalizer.to_dict())


def register(tracking: Tracking, sensor_id: str, model: TrainedModel, production: bool) -> VersionInfo:
    """Register ``model`` for ``sensor_id`` (alias ``staging``); with ``production`` also point that alias at it."""
    run_id = tracking.client.create_run(tracking.experiment_id, run_name=f"train-{sensor_id}").info.run_id
    info = register_version(tracking, run_id, model, sensor_id)
    if production:
        promote_alias(tracking, sensor_id, info.version)
    return info


def promote_alias(tracking: Tracking, sensor_id: str, version: str) -> None:
    """Point ``production`` of ``pdm-<sensor_id>-lstm`` at ``version`` (what the promotion gate does on success)."""
    tracking.client.set_registered_model_alias(model_name(sensor_id, "lstm"), PRODUCTION, version)


@dataclass(frozen=True)
class Registry:
    """A module's registry: its settings (``home`` holds the store) and a client to change aliases."""

    settings: Settings
    tracking: Tracking
    models: dict[int, TrainedModel]
