"""``pdm-ray benchmark`` end to end on two sample channels, fanned out as Ray tasks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm_ray.cli.benchmark_cmd import benchmark
from pdm_ray.errors import DataError

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
SMALL = """
lstm: {layers: [16], dropout: 0.1}
transformer: {d_model: 16, num_heads: 2, num_layers: 1, ff_dim: 32, dropout: 0.1}
train: {epochs: 2, patience: 1}
"""


@pytest.mark.ray
@pytest.mark.slow
def test_benchmark_two_sample_channels_through_ray(ray_cluster: None, tmp_path: Path, capsys) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(f"home: {tmp_path / 'home'}\n" + SMALL)
    out = tmp_path / "out"
    args = argparse.Namespace(data=str(SAMPLE), model="ensemble", channels="A-5,A-6", out=str(out), config=str(config))
    assert benchmark(args) == 0
    # the tasks shared their compiled programs under home (pdm_ray.models.compile_cache)
    assert list((tmp_path / "home" / "jax_cache").glob("jit__train_step-*"))

    results = pd.read_csv(out / "results.csv")
    assert sorted(results["model"].unique()) == ["ensemble", "lstm", "transformer"]
    assert sorted(results["chan_id"].unique()) == ["A-5", "A-6"]
    assert len(results) == 6
    assert (results["n_test"].isin([4693, 4453])).all()
    n_test = dict(zip(results["chan_id"], results["n_test"], strict=False))
    for chan in ("A-5", "A-6"):  # test forecasts kept, one array per forecaster, from index l_s on
        with np.load(out / "predictions" / f"{chan}.npz") as saved:
            assert sorted(saved.files) == ["lstm", "lstm_validation", "transformer", "transformer_validation"]
            kinds = ("lstm", "transformer")
            assert all(saved[k].shape == (n_test[chan] - 250,) and np.isfinite(saved[k]).all() for k in kinds)
            assert all(0 < len(saved[f"{k}_validation"]) < n_test[chan] for k in kinds)
    for _, row in results.iterrows():
        seqs = json.loads(row["anomaly_sequences"])
        assert all(0 <= s <= e < row["n_test"] for s, e in seqs)
        assert len(json.loads(row["scores"])) == len(seqs)
        # one label per channel: it is either found (tp) or missed (fn)
        assert (row["tp"] + row["fn"] == 1 and row["fp"] == len(seqs) - row["tp"]) or row["tp"] == 1

    summary = json.loads((out / "summary.json").read_text())
    for model in ("lstm", "transformer", "ensemble"):
        total = summary["models"][model]["total"]
        rows = results[results["model"] == model]
        assert total["tp"] == rows["tp"].sum() and total["fp"] == rows["fp"].sum() and total["fn"] == rows["fn"].sum()
        assert set(summary["models"][model]["per_spacecraft"]) == {"SMAP"}
    printed = capsys.readouterr().out
    assert "ensemble" in printed and "F1" in printed


def test_benchmark_rejects_unknown_channel(tmp_path: Path) -> None:
    args = argparse.Namespace(data=str(SAMPLE), model="lstm", channels="A-5,NOPE-1", out=str(tmp_path), config=None)
    with pytest.raises(DataError, match="no such channel"):
        benchmark(args)
