"""A registered version's validation RMSE in sensor units (for the dashboard's forecast alert)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pdm_ray.data.channels import Channel
from pdm_ray.errors import DataError, TrackingError
from pdm_ray.models import TrainedModel
from pdm_ray.tracking.registry import register_version
from pdm_ray.tracking.runs import connect
from pdm_ray.tracking.validation import rmse_in_units, validation_rmse


def normalizer(scale: float) -> dict[str, object]:
    return {"format_version": 1, "method": "zscore", "columns": "value", "center": [7.0], "scale": [scale]}


def test_rmse_in_units_by_hand() -> None:
    assert rmse_in_units({"val_loss": 0.25, "normalizer": normalizer(4.0)}) == 2.0  # sqrt(0.25) * 4
    assert rmse_in_units({"val_loss": 0.25, "normalizer": None}) == 0.5
    assert rmse_in_units({"val_loss": float("nan"), "normalizer": None}) is None
    assert rmse_in_units({"normalizer": None}) is None
    with pytest.raises(DataError, match="normalizer is missing key"):
        rmse_in_units({"val_loss": 1.0, "normalizer": {"format_version": 1}})


def test_validation_rmse_of_a_registered_version(mlflow_uri: str, channel: Channel, good_model: TrainedModel) -> None:
    tracking = connect(mlflow_uri, "pdm-ray")
    run_id = tracking.client.create_run(tracking.experiment_id).info.run_id
    info = register_version(tracking, run_id, good_model, "S-1")
    expected = math.sqrt(good_model.val_loss) * good_model.normalizer["scale"][0]
    assert validation_rmse(tracking, info.name, info.version) == pytest.approx(expected, rel=1e-12)
    plain = register_version(tracking, run_id, replace(good_model, normalizer=None), "S-1")
    assert validation_rmse(tracking, plain.name, plain.version) == pytest.approx(math.sqrt(good_model.val_loss))
    with pytest.raises(TrackingError, match="pdm-S-1-lstm version 99"):
        validation_rmse(tracking, info.name, "99")
