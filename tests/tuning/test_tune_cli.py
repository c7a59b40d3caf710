"""``pdm-ray tune`` end to end on a tiny sweep, and its one-line errors."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pdm_ray.cli import main


def _config(tmp_path: Path, **tracking: str) -> Path:
    extra = "".join(f"\n  {k}: {v}" for k, v in tracking.items())
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"""home: {tmp_path / "home"}
windows: {{l_s: 30, n_predictions: 2}}
train: {{epochs: 2}}
tracking:
  experiment: cli{extra}
sweep:
  model: lstm
  num_samples: 1
  search_space:
    units: {{value: 8}}
    layers: {{value: 1}}
"""
    )
    return path


@pytest.mark.ray
@pytest.mark.slow
def test_tune_prints_one_row_per_channel_and_registers(
    ray_cluster: None, tmp_path: Path, tiny_data: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_data(tmp_path / "data", ("T-1",))
    args = ["tune", "--config", str(_config(tmp_path)), "--data", str(data), "--channels", "T-1", "--promote"]
    status = main(args)
    out = capsys.readouterr().out
    assert status == 0
    header, _, row = out.strip().splitlines()[-3:]
    assert header.split()[:3] == ["channel", "trials", "val_ratio"]
    assert row.split()[:2] == ["T-1", "1"] and "layers=1 units=8" in row
    assert " promoted " in row  # the first version of a model passes the gate
    client = MlflowClient(f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').resolve()}")
    assert str(client.get_model_version_by_alias("pdm-T-1-lstm", "production").version) == "1"
    assert "Configuration for experiment" not in out  # Tune's console output is off without a terminal


def test_tune_errors_are_one_line_with_exit_2(
    tmp_path: Path, tiny_data: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_data(tmp_path / "data", ("T-1",))
    status = main(["tune", "--config", str(_config(tmp_path)), "--data", str(data), "--channels", "T-1,Z-9"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "pdm-ray tune: error:" in err and "['Z-9']" in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    status = main(["tune", "--config", str(_config(tmp_path, uri=uri)), "--data", str(data), "--channels", "T-1"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and uri in err
