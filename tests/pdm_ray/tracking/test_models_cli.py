"""``pdm-ray models list|promote|rollback`` against a real registry on SQLite."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.cli import main
from pdm_ray.data.channels import Channel
from pdm_ray.data.normalize import Normalizer
from pdm_ray.models import TrainedModel
from pdm_ray.tracking.registry import register_version, validation_mse, validation_windows
from pdm_ray.tracking.runs import connect

from .conftest import L_S, N_PRED


def test_promote_list_rollback_from_the_command_line(
    mlflow_uri: str,
    tmp_path: Path,
    channel: Channel,
    good_model: TrainedModel,
    bad_model: TrainedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for split, series in (("train", channel.train), ("test", channel.test)):
        (tmp_path / "data" / split).mkdir(parents=True)
        np.save(tmp_path / "data" / split / "S-1.npy", series)
    config = tmp_path / "c.yaml"
    config.write_text(f"home: {tmp_path}\ndata: {{dir: {tmp_path / 'data'}}}\ntracking: {{uri: '{mlflow_uri}'}}\n")
    tracking = connect(mlflow_uri, "pdm-ray")
    gate = ["models", "promote", "S-1", "--config", str(config)]
    # The bad fixture carries the good model's val_loss; record its own, so the two rows differ.
    # val_loss is the MSE of the z-scored held-out windows: the raw MSE over the scale squared.
    raw_x, raw_y = validation_windows(channel.train, L_S, N_PRED, bad_model.train_settings.validation_split)
    scale = Normalizer.from_dict(bad_model.normalizer).scale[0]
    bad_model = replace(bad_model, val_loss=validation_mse(bad_model, raw_x, raw_y) / scale**2)
    assert f"{bad_model.val_loss:.3f}" != f"{good_model.val_loss:.3f}"

    for model in (bad_model, good_model):
        run = tracking.client.create_run(tracking.experiment_id)
        register_version(tracking, run.info.run_id, model, "S-1")
        assert main(gate) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("pdm-S-1-lstm version 1: promoted to production: no production version yet")
    assert out[1].startswith("pdm-S-1-lstm version 2: promoted to production: validation MSE")

    assert main(["models", "list", "--channel", "S-1", "--config", str(config)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [  # val_loss printed with 3 decimals
        ["pdm-S-1-lstm", "2", "production", "production", f"{good_model.val_loss:.3f}"],
        ["pdm-S-1-lstm", "1", "archived", "archived", f"{bad_model.val_loss:.3f}"],
    ]

    assert main(["models", "rollback", "S-1", "--reason", "false alarms", "--config", str(config)]) == 0
    assert "moved back from version 2 to 1 (false alarms)" in capsys.readouterr().out
    assert main(["models", "rollback", "S-1", "--reason", "again", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no earlier production version than 1" in err
    assert main(gate) == 2
    assert "has no staging version" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PDM_TRACKING__URI": "foo://bar"}, "MLflow tracking URI foo://bar is unreachable or refused the request"),
        ({"PDM_TRACKING__URI": "{tmp}/plain"}, "MLflow tracking URI {tmp}/plain is unreachable or refused the request"),
        ({"PDM_HOME": "/proc/nope"}, "MLflow tracking URI sqlite:////proc/nope/mlflow.db is unreachable"),
        ({"PDM_HOME": ""}, "environment variable PDM_HOME: home: Value error, must not be empty"),
    ],
)
def test_an_unusable_store_is_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    """A URI MLflow has no store for, or a home that cannot be created: one line, not MLflow's traceback."""
    monkeypatch.setenv("PDM_HOME", str(tmp_path / "home"))
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    assert main(["models", "list"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("pdm-ray models: error: ") and message.format(tmp=tmp_path) in line
