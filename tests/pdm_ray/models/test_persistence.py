"""Persistence: msgpack + JSON round trip with identical predictions; missing and corrupt files."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flax import serialization

from pdm_ray.config import TrainSettings
from pdm_ray.errors import DataError, ModelNotTrainedError
from pdm_ray.models import ModelSpec, TrainedModel, load_model, predict, save_model, train
from pdm_ray.models.persistence import MODEL_FILE, PARAMS_FILE

Windows = tuple[np.ndarray, np.ndarray]


def test_round_trip_gives_identical_predictions(tmp_path: Path, windows: Windows, trained_lstm: TrainedModel) -> None:
    x, _ = windows
    model = dataclasses.replace(trained_lstm, normalizer={"method": "zscore", "mean": [0.5, 0.0], "std": [1.0, 1.0]})
    out = save_model(model, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == [MODEL_FILE, PARAMS_FILE]
    loaded = load_model(out)
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    assert loaded.spec == model.spec
    assert loaded.history == model.history
    assert loaded.train_settings == model.train_settings
    assert loaded.normalizer == model.normalizer
    assert (loaded.best_epoch, loaded.val_loss, loaded.naive_val_loss, loaded.seed) == (
        model.best_epoch,
        model.val_loss,
        model.naive_val_loss,
        model.seed,
    )
    doc = json.loads((out / MODEL_FILE).read_text())
    assert doc["spec"]["kind"] == "lstm" and doc["format_version"] == 1


def test_missing_files_mean_no_model(tmp_path: Path, trained_lstm: TrainedModel) -> None:
    with pytest.raises(ModelNotTrainedError, match=r"no saved model: model\.json not found"):
        load_model(tmp_path / "nothing")
    save_model(trained_lstm, tmp_path)
    (tmp_path / PARAMS_FILE).unlink()
    with pytest.raises(ModelNotTrainedError, match=r"params\.msgpack not found"):
        load_model(tmp_path)


def test_corrupt_json(tmp_path: Path, trained_lstm: TrainedModel) -> None:
    save_model(trained_lstm, tmp_path)
    (tmp_path / MODEL_FILE).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / MODEL_FILE).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(DataError, match="unsupported format_version 99"):
        load_model(tmp_path)


def test_params_that_do_not_fit_the_spec(
    tmp_path: Path, trained_lstm: TrainedModel, small_spec: Callable[[str], ModelSpec]
) -> None:
    save_model(trained_lstm, tmp_path)
    doc = json.loads((tmp_path / MODEL_FILE).read_text())
    doc["spec"]["n_features"] = 5  # the first layer's input kernel no longer fits
    (tmp_path / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(DataError, match="do not match the lstm network"):
        load_model(tmp_path)
    doc["spec"] = small_spec("transformer").to_dict()
    (tmp_path / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(DataError, match="do not match the transformer network"):
        load_model(tmp_path)
    (tmp_path / PARAMS_FILE).write_bytes(serialization.msgpack_serialize({"x": np.zeros(3)}))
    with pytest.raises(DataError, match="do not match"):
        load_model(tmp_path)


def test_a_transformer_saved_before_patches_and_members_loads_as_it_was_saved(
    tmp_path: Path, windows: Windows, small_spec: Callable[[str], ModelSpec]
) -> None:
    x, y = windows
    spec = small_spec("transformer")
    then = dataclasses.replace(spec, transformer=spec.transformer.model_copy(update={"patch_len": 1, "members": 1}))
    model = train(then, TrainSettings(epochs=1, batch_size=32, seed=0), x, y)
    save_model(model, tmp_path)
    doc = json.loads((tmp_path / MODEL_FILE).read_text())
    for key in ("patch_len", "members"):  # the keys such a model.json lacks
        del doc["spec"]["transformer"][key]
    (tmp_path / MODEL_FILE).write_text(json.dumps(doc))
    loaded = load_model(tmp_path)
    assert loaded.spec == then
    np.testing.assert_array_equal(predict(loaded, x[:8]), predict(model, x[:8]))


def test_save_refuses_untrained_and_unserializable(tmp_path: Path, trained_lstm: TrainedModel) -> None:
    with pytest.raises(ModelNotTrainedError, match="without parameters"):
        save_model(dataclasses.replace(trained_lstm, params=None), tmp_path)
    with pytest.raises(DataError, match="normalizer is not JSON-serializable"):
        save_model(dataclasses.replace(trained_lstm, normalizer={"mean": np.zeros(2)}), tmp_path)
