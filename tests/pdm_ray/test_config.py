"""Settings: YAML + PDM_* overrides, and errors that name file, field and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdm_ray.config import DEFAULT_CONFIG, Settings, load_settings
from pdm_ray.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_default_file_matches_paper_defaults() -> None:
    settings = load_settings(DEFAULT_CONFIG, env={})
    assert settings.windows.l_s == 250 and settings.windows.n_predictions == 10
    assert settings.lstm.layers == [80, 80] and settings.lstm.dropout == pytest.approx(0.3)
    assert settings.threshold.batch_size == 70 and settings.threshold.window_size == 30
    assert settings.threshold.p == pytest.approx(0.13)
    assert settings.home == Path(".pdm_ray")
    assert settings.ray.address is None


def test_tracking_uri_defaults_to_sqlite_under_home(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, f"home: {tmp_path}\n"), env={})
    assert settings.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_compile_cache_lives_under_home_and_can_be_turned_off(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, f"home: {tmp_path}\n"), env={})
    assert settings.compile_cache_dir == tmp_path.resolve() / "jax_cache"
    off = load_settings(write(tmp_path, f"home: {tmp_path}\n"), env={"PDM_COMPILE_CACHE": "false"})
    assert off.compile_cache_dir is None


def test_env_overrides_nested_fields_and_home(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 7\n")
    settings = load_settings(path, env={"PDM_HOME": "/srv/pdm", "PDM_TRAIN__EPOCHS": "3", "PDM_UNRELATED": "x"})
    assert settings.home == Path("/srv/pdm")
    assert settings.train.epochs == 3


def test_unknown_key_names_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value) == f"{path}: train.epochz: unknown key"


def test_wrong_type_names_field_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: many\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value).startswith(f"{path}: train.epochs: Input should be a valid integer")
    assert "'many'" in str(err.value)


def test_negative_window_length(tmp_path: Path) -> None:
    path = write(tmp_path, "windows:\n  l_s: -5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value) == f"{path}: windows.l_s: Input should be greater than 0 (got -5)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "nope.yaml", env={})
    assert str(err.value) == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), env={"PDM_TRAIN__EPOCHS": "abc"})
    assert str(err.value).startswith("environment variable PDM_TRAIN__EPOCHS: train.epochs:")


@pytest.mark.parametrize("token", ["&Xk9pQ2", "null", "~", "a #b", "0123", "*x", "!x", "'x", "|x", "true"])
def test_env_text_fields_are_taken_verbatim(tmp_path: Path, token: str) -> None:
    """As YAML, ``&x`` is an anchor, ``null`` None (auth off), ``a #b`` is cut at the comment, ``0123`` octal."""
    settings = load_settings(
        write(tmp_path, ""),
        env={"PDM_SERVE__AUTH_TOKEN": token, "PDM_TRACKING__URI": token, "PDM_HOME": token, "PDM_RUN__REPORT": token},
    )
    assert settings.serve.auth_token == token and settings.tracking.uri == token
    assert settings.home == Path(token) and settings.run.report == Path(token)


def test_env_non_text_fields_are_still_yaml(tmp_path: Path) -> None:
    env = {"PDM_TRAIN__REFIT": "true", "PDM_DATA__CHANNELS": "[A-1, T-1]", "PDM_QUALITY__GATE": "off"}
    settings = load_settings(write(tmp_path, ""), env=env)
    assert settings.train.refit is True and settings.data.channels == ["A-1", "T-1"]
    assert settings.quality.gate == "off"  # a choice of strings is text: YAML would read `off` as False


def test_env_value_that_is_not_yaml_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), env={"PDM_TRAIN__EPOCHS": "["})
    assert str(err.value).startswith("environment variable PDM_TRAIN__EPOCHS: not valid YAML: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("token", ["", "  "])
def test_blank_auth_token_is_refused(tmp_path: Path, token: str) -> None:
    """A blank token is falsy: the API would run without auth while the operator thinks it has one."""
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), env={"PDM_SERVE__AUTH_TOKEN": token})
    assert str(err.value).startswith("environment variable PDM_SERVE__AUTH_TOKEN: serve.auth_token: ")
    with pytest.raises(ConfigError, match=r"serve\.auth_token: Value error, must not be blank"):
        load_settings(write(tmp_path, 'serve:\n  auth_token: ""\n'), env={})


def test_empty_home_is_refused(tmp_path: Path) -> None:
    """``Path("")`` is the working directory: the store and sensor state would land wherever the command ran."""
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), env={"PDM_HOME": ""})
    assert str(err.value) == "environment variable PDM_HOME: home: Value error, must not be empty (got '')"


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"train:\n  epochs: 3\n\xff\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value).startswith(f"{path}: cannot read config file: 'utf-8' codec can't decode byte 0xff")


def test_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_settings(path, env={})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.train.epochs = 3  # type: ignore[misc]
