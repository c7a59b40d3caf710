"""Search spaces: the typed ``sweep.search_space`` section -> Ray Tune distributions, and back.

A sampled trial config is a flat dict (``{"channel": "A-2", "learning_rate": 3e-3,
"layers": 2, "units": 40, ...}``); ``trial_settings`` folds it into a copy of the
``Settings`` sections the model code reads, so trials and plain ``train`` calls share
one code path.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from ray import tune

from pdm_ray.config import SearchDimension, Settings, SweepSettings
from pdm_ray.errors import ConfigError

_TRAIN_KEYS = ("learning_rate", "batch_size", "epochs")
_TRANSFORMER_KEYS = ("d_model", "num_heads", "num_layers", "ff_dim", "dropout", "patch_len")


def to_tune(dim: SearchDimension) -> Any:
    """One ``SearchDimension`` as a Tune domain (or the fixed value)."""
    if dim.loguniform is not None:
        return tune.loguniform(*dim.loguniform)
    if dim.uniform is not None:
        return tune.uniform(*dim.uniform)
    if dim.randint is not None:
        return tune.randint(*dim.randint)
    if dim.choice is not None:
        return tune.choice(list(dim.choice))
    return dim.value


def tune_search_space(sweep: SweepSettings, channels: list[str]) -> dict[str, Any]:
    """The ``param_space`` of the sweep's Tuner: the search space plus ``channel`` as a grid.

    With ``num_samples = n`` Tune runs ``n`` sampled configs *per channel* (the grid
    dimension multiplies the samples), Ray's many-model pattern in one Tuner.
    """
    space: dict[str, Any] = {name: to_tune(dim) for name, dim in sweep.search_space.items()}
    space["channel"] = tune.grid_search(list(channels))
    return space


def trial_settings(settings: Settings, model: str, config: dict[str, Any]) -> Settings:
    """``settings`` with a trial's sampled values applied to ``train``, ``lstm`` or ``transformer``.

    ``layers`` x ``units`` (LSTM) become ``lstm.layers = [units] * layers``.

    Raises:
        ConfigError: a sampled value is invalid for its section (e.g. ``d_model`` not
            divisible by ``num_heads``); the message names the trial config.
    """
    train = settings.train.model_dump()
    train.update({k: config[k] for k in _TRAIN_KEYS if k in config})
    train["model"] = model
    update: dict[str, Any] = {"train": train}
    if model == "lstm":
        lstm = settings.lstm.model_dump()
        if "layers" in config or "units" in config:
            depth = int(config.get("layers", len(settings.lstm.layers)))
            width = int(config.get("units", settings.lstm.layers[0]))
            lstm["layers"] = [width] * depth
        if "dropout" in config:
            lstm["dropout"] = config["dropout"]
        update["lstm"] = lstm
    else:
        transformer = settings.transformer.model_dump()
        transformer.update({k: config[k] for k in _TRANSFORMER_KEYS if k in config})
        update["transformer"] = transformer
    try:
        return Settings.model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"trial config {config}: {field}: {first['msg']}") from None
