from __future__ import annotations

from pathlib import Path

import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from pdm_ray.config import DEFAULT_CONFIG, SearchDimension, Settings, SweepSettings, load_settings
from pdm_ray.data import largest_first
from pdm_ray.errors import ConfigError
from tuning.space import to_tune, trial_settings, tune_search_space
from tuning.sweep import _check_channels, sweep_settings


def test_each_dimension_becomes_the_matching_tune_domain() -> None:
    log = to_tune(SearchDimension(loguniform=(1e-4, 1e-2)))
    assert isinstance(log, Float) and (log.lower, log.upper) == (1e-4, 1e-2)
    assert isinstance(log.get_sampler(), Float._LogUniform)
    assert isinstance(to_tune(SearchDimension(uniform=(0.0, 0.5))).get_sampler(), Float._Uniform)
    ints = to_tune(SearchDimension(randint=(1, 4)))
    assert isinstance(ints, Integer) and (ints.lower, ints.upper) == (1, 4)
    options = to_tune(SearchDimension(choice=[40, 80]))
    assert isinstance(options, Categorical) and options.categories == [40, 80]
    assert to_tune(SearchDimension(value=3)) == 3


def test_channel_is_a_grid_dimension_next_to_the_samples() -> None:
    sweep = SweepSettings(search_space={"units": {"choice": [8, 16]}})
    space = tune_search_space(sweep, ["A-2", "T-1"])
    assert space["channel"] == tune.grid_search(["A-2", "T-1"])
    assert isinstance(space["units"], Categorical)


def test_channel_check_measures_each_channels_training_data() -> None:
    settings = Settings.model_validate({"windows": {"l_s": 50, "n_predictions": 10}})
    sizes = _check_channels(["A-5", "T-1"], DEFAULT_CONFIG.parent.parent / "data" / "sample", settings)
    assert list(sizes) == ["A-5", "T-1"]  # the given order
    assert sizes["T-1"] > 4 * sizes["A-5"] > 0  # 2,816 windows of T-1 against 646 of A-5 at l_s 50
    assert largest_first(sizes) == ["T-1", "A-5"]


def test_search_dimension_needs_exactly_one_valid_form() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SearchDimension(choice=[1], value=1)
    with pytest.raises(ValueError, match="low < high"):
        SearchDimension(uniform=(0.5, 0.1))
    with pytest.raises(ValueError, match="low > 0"):
        SearchDimension(loguniform=(0.0, 1.0))


def test_unknown_sweep_parameter_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("sweep:\n  model: transformer\n  search_space:\n    units: {choice: [8]}\n")
    with pytest.raises(ConfigError, match=r"sweep.yaml: sweep: .*unknown transformer sweep parameter\(s\) \['units'\]"):
        load_settings(path, env={})


def test_trial_settings_fold_samples_into_sections() -> None:
    base = Settings()
    lstm = trial_settings(base, "lstm", {"channel": "A-2", "learning_rate": 0.003, "layers": 3, "units": 16})
    assert lstm.lstm.layers == [16, 16, 16] and lstm.train.learning_rate == 0.003
    assert lstm.lstm.dropout == base.lstm.dropout and lstm.train.model == "lstm"
    only_units = trial_settings(base, "lstm", {"units": 40})
    assert only_units.lstm.layers == [40] * len(base.lstm.layers)
    tr = trial_settings(
        base, "transformer", {"d_model": 32, "num_heads": 2, "dropout": 0.0, "epochs": 3, "patch_len": 5}
    )
    assert (tr.transformer.d_model, tr.transformer.num_heads, tr.transformer.dropout) == (32, 2, 0.0)
    assert tr.transformer.patch_len == 5
    assert tr.train.epochs == 3 and tr.train.model == "transformer"


def test_invalid_sampled_combination_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="transformer: Value error, d_model \\(30\\) must be divisible"):
        trial_settings(Settings(), "transformer", {"d_model": 30, "num_heads": 4})


def test_sweep_overrides_are_validated() -> None:
    sweep = sweep_settings(Settings(), model="transformer", num_samples=3, resources_per_trial={"cpu": 0.5})
    assert (sweep.model, sweep.num_samples, sweep.cpus_per_trial) == ("transformer", 3, 0.5)
    with pytest.raises(ConfigError, match=r"sweep\.num_samples"):
        sweep_settings(Settings(), num_samples=0)
    with pytest.raises(ConfigError, match="unknown resource"):
        sweep_settings(Settings(), resources_per_trial={"tpu": 1})


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_shipped_sweep_files_load(name: str) -> None:
    settings = load_settings(DEFAULT_CONFIG.parent / "sweeps" / f"{name}.yaml", env={})
    assert settings.sweep.model == name and settings.sweep.search_space
