"""``pdm-ray data features|prepare|version``, run in-process on the bundled sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def write_config(tmp_path: Path, text: str = "windows:\n  l_s: 20\n  n_predictions: 2\n") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_prepare_prints_the_quality_table_and_writes_each_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "prepared"
    args = ["data", "prepare", str(SAMPLE), "--channels", "A-5,A-6", "--out", str(out_dir)]
    assert main([*args, "--config", write_config(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["channel", "split", "status", "missing%"]
    assert [line.split()[:2] for line in lines[2:6]] == [
        ["A-5", "train"],
        ["A-5", "test"],
        ["A-6", "train"],
        ["A-6", "test"],
    ]
    assert lines[2].split()[2] == "fair"  # A-5 train: 58% of steps stuck in long runs
    assert lines[-1] == f"2 of 2 channels prepared -> {out_dir}"
    assert sorted(p.name for p in out_dir.iterdir()) == ["A-5", "A-6", "summary.json"]
    assert (out_dir / "A-5" / "normalizer.json").is_file()


def test_prepare_lists_refused_channels_and_strict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strict_flatline = "quality:\n  flatline_pct: [10.0, 20.0, 30.0, 40.0]\n"  # A-5 train is 58% stuck
    config = write_config(tmp_path, strict_flatline)
    args = ["data", "prepare", str(SAMPLE), "--channels", "A-5,A-2", "--config", config]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "refused: channel A-5: train data quality is critical, refusing to train: flatline: 58.4%" in out
    assert "1 of 2 channels prepared" in out
    assert main([*args, "--strict"]) == 1


def _copy_sample(root: Path, channels: tuple[str, ...]) -> Path:
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for cid in channels:
            (root / split / f"{cid}.npy").write_bytes((SAMPLE / split / f"{cid}.npy").read_bytes())
    (root / "labeled_anomalies.csv").write_bytes((SAMPLE / "labeled_anomalies.csv").read_bytes())
    return root


def test_prepare_imputes_gaps_in_files_and_refuses_a_broken_channel_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _copy_sample(tmp_path / "data", ("A-5", "A-6"))
    train = np.load(data / "train" / "A-6.npy")
    train[300:305, 0] = np.nan  # a short gap, as telemetry files have
    np.save(data / "train" / "A-6.npy", train)
    (data / "test" / "A-5.npy").unlink()
    args = ["data", "prepare", str(data), "--channels", "A-5,A-6", "--config", write_config(tmp_path)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    a6_train = next(line.split() for line in out.splitlines() if line.split()[:2] == ["A-6", "train"])
    assert a6_train[-1] == "5"  # imputed values
    assert "refused: " in out and "A-5.npy: file not found" in out
    assert "1 of 2 channels prepared" in out
    assert "refused" in json.loads((tmp_path / "out" / "summary.json").read_text())["A-5"]
    assert main([*args, "--strict"]) == 1
    assert main(["data", "inspect", str(data)]) == 2  # A-5 has no test series: inspect names it
    assert "A-5.npy: file not found" in capsys.readouterr().err


def test_prepare_strips_spaces_in_channels_like_the_other_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["data", "prepare", str(SAMPLE), "--channels", "A-5, A-6", "--config", write_config(tmp_path)]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 of 2 channels prepared"


def test_an_unwritable_out_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "f.csv"
    assert main(["data", "features", str(SAMPLE), "--channel", "A-5", "--out", str(missing)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"pdm-ray data: error: --out {missing}: cannot write the features: ")
    a_file = tmp_path / "afile"
    a_file.touch()
    args = [
        "data",
        "prepare",
        str(SAMPLE),
        "--channels",
        "A-5",
        "--out",
        str(a_file),
        "--config",
        write_config(tmp_path),
    ]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"pdm-ray data: error: --out {a_file}: cannot create the output directory: ")
    for stage in (["train", str(tmp_path), "--out", str(a_file)], ["evaluate", str(tmp_path), str(tmp_path)]):
        out = a_file / "metrics.json" if stage[0] == "evaluate" else a_file
        assert main(["data", "stage", *stage, *(["--out", str(out)] if stage[0] == "evaluate" else [])]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert f"--out {a_file}: cannot create the output directory: " in line


def test_version_prints_the_content_hash_of_untracked_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "x.csv"
    target.write_text("a,b\n1,2\n")
    assert main(["data", "version", str(target)]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("content-hash: ") and len(first.split()[1]) == 64
    assert second == f"{target}: 1 files, 8 bytes"
    assert main(["data", "version", str(tmp_path / "none")]) == 2


def test_train_stage_refuses_windows_prepared_with_other_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "prepared"
    prepare = ["data", "prepare", str(SAMPLE), "--channels", "A-5", "--out", str(out_dir)]
    assert main([*prepare, "--config", write_config(tmp_path)]) == 0
    other = write_config(tmp_path, "windows:\n  l_s: 30\n  n_predictions: 2\n")
    assert main(["data", "stage", "train", str(out_dir), "--out", str(tmp_path / "m"), "--config", other]) == 2
    assert "prepared with l_s, n_predictions = (20, 2) but the config says (30, 2)" in capsys.readouterr().err
