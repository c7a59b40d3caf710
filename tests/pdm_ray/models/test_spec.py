"""ModelSpec: JSON round trip, from settings, and invalid values."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pdm_ray.config import Settings
from pdm_ray.errors import ConfigError, DataError
from pdm_ray.models import ModelSpec


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_json_round_trip(kind: str, small_spec: Callable[[str], ModelSpec]) -> None:
    spec = small_spec(kind)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_from_settings_takes_each_section() -> None:
    settings = Settings.model_validate(
        {"windows": {"l_s": 30, "n_predictions": 5}, "train": {"model": "transformer"}, "lstm": {"layers": [8]}}
    )
    spec = ModelSpec.from_settings(settings, n_features=25)
    assert (spec.kind, spec.n_features, spec.l_s, spec.n_predictions) == ("transformer", 25, 30, 5)
    assert spec.lstm.layers == [8]
    assert spec.transformer == settings.transformer


def test_invalid_values_are_named() -> None:
    with pytest.raises(ConfigError, match="model kind must be one of"):
        ModelSpec(kind="gru", n_features=1, l_s=2, n_predictions=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ModelSpec\.l_s must be a positive integer, got 0"):
        ModelSpec(kind="lstm", n_features=1, l_s=0, n_predictions=1)


def test_from_dict_rejects_malformed(small_spec: Callable[[str], ModelSpec]) -> None:
    good = small_spec("lstm").to_dict()
    with pytest.raises(DataError, match=r"missing keys \['l_s'\]"):
        ModelSpec.from_dict({k: v for k, v in good.items() if k != "l_s"})
    with pytest.raises(DataError, match=r"unknown keys \['extra'\]"):
        ModelSpec.from_dict({**good, "extra": 1})
    with pytest.raises(DataError, match=r"model spec: lstm\.dropout"):
        ModelSpec.from_dict({**good, "lstm": {"layers": [8], "dropout": 2.0}})
    with pytest.raises(DataError, match="n_features must be a positive integer"):
        ModelSpec.from_dict({**good, "n_features": -1})
    with pytest.raises(DataError, match="must be a JSON object, got list"):
        ModelSpec.from_dict([])
