"""``pdm-ray data features|prepare|version``, run in-process on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pdm_ray.cli import main

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample"


def test_features_prints_shape_and_head(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "features", str(SAMPLE), "--channel", "A-5", "--window", "40"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "A-5 train: 666 windows x 52 features (window 40)"  # 705 - 40 + 1
    assert "spectral_entropy" in out and "cmd_changes" in out


def test_features_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "f.csv"
    assert main(["data", "features", str(SAMPLE), "--channel", "A-5", "--split", "test", "--out", str(out_file)]) == 0
    frame = pd.read_csv(out_file, index_col="t")
    assert frame.shape == (4693 - 100 + 1, 52)
    assert frame.index[0] == 99
    assert str(out_file) in capsys.readouterr().out


def test_features_window_too_small_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "features", str(SAMPLE), "--channel", "A-5", "--window", "20"]) == 2
    assert "do not fit in a window of 20" in capsys.readouterr().err
