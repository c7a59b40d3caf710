"""prepare_channel end to end: gate, impute, normalize, windows, features, save/load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.config import Settings
from pdm_ray.data import load_channel
from pdm_ray.data.channels import Channel
from pdm_ray.data.pipeline import load_prepared, prepare_channel, save_prepared
from pdm_ray.data.quality import QualityStatus
from pdm_ray.errors import DataError, DataQualityError, InsufficientDataError

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


def small_settings(**sections: dict) -> Settings:
    return Settings.model_validate({"windows": {"l_s": 20, "n_predictions": 3}, **sections})


def synthetic(train: np.ndarray, test: np.ndarray | None = None) -> Channel:
    test = np.sin(np.arange(200) / 5.0)[:, None].repeat(2, axis=1) if test is None else test
    return Channel("X-1", "", train.astype(np.float32), test.astype(np.float32), ((50, 60),), ("point",))


def wave(n: int = 300) -> np.ndarray:
    x = np.column_stack([np.sin(np.arange(n) / 5.0) * 3.0 + 1.0, np.zeros(n)])
    x[::17, 1] = 1.0
    return x


def test_sample_channel_is_normalized_on_train_and_windowed() -> None:
    channel = load_channel(SAMPLE, "A-5")
    prepared = prepare_channel(channel, small_settings())
    assert prepared.train.shape == channel.train.shape and prepared.train.dtype == np.float32
    assert prepared.X.shape == (705 - 20 - 3 + 1, 20, 25) and prepared.y.shape == (683, 3)
    assert abs(prepared.train[:, 0].mean()) < 1e-4 and prepared.train[:, 0].std() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_array_equal(prepared.train[:, 1:], channel.train[:, 1:])  # command flags untouched
    np.testing.assert_allclose(prepared.normalizer.inverse_transform(prepared.test), channel.test, atol=1e-5)
    np.testing.assert_array_equal(prepared.X[0, :, 0], prepared.train[:20, 0])
    np.testing.assert_array_equal(prepared.y[0], prepared.train[20:23, 0])
    assert not prepared.train_imputed.any() and not prepared.test_imputed.any()
    assert prepared.train_quality.status < QualityStatus.CRITICAL
    assert prepared.anomalies == channel.anomalies
    assert prepared.train_features is None


def test_gaps_and_infs_are_imputed_and_masked() -> None:
    train = wave()
    train[[40, 41, 42], 0] = np.nan
    train[100, 0] = np.inf
    prepared = prepare_channel(synthetic(train), small_settings())
    assert np.isfinite(prepared.train).all()
    assert np.flatnonzero(prepared.train_imputed[:, 0]).tolist() == [40, 41, 42, 100]
    raw = prepared.normalizer.inverse_transform(prepared.train)
    assert raw[41, 0] == pytest.approx((train[39, 0] + train[43, 0]) / 2, abs=1e-5)  # linear: the midpoint
    assert raw[100, 0] == pytest.approx((train[99, 0] + train[101, 0]) / 2, abs=1e-5)


def test_critical_train_refuses_to_train_with_the_report() -> None:
    train = wave()
    train[::3, 0] = np.nan  # 33% missing: critical
    with pytest.raises(DataQualityError, match=r"channel X-1: train data quality is critical.*missing: 33\.3%") as info:
        prepare_channel(synthetic(train), small_settings())
    assert info.value.report.status is QualityStatus.CRITICAL
    assert isinstance(info.value, DataError)
    prepared = prepare_channel(synthetic(train), small_settings(quality={"gate": "off"}))
    assert prepared.train_quality.status is QualityStatus.CRITICAL and np.isfinite(prepared.train).all()


def test_test_split_is_gated_only_when_asked() -> None:
    test = wave(200)
    test[:80, 0] = np.nan  # 40% missing in test
    channel = synthetic(wave(), test)
    settings = {"impute": {"max_gap": 100}}
    assert prepare_channel(channel, small_settings(**settings)).test_quality.status is QualityStatus.CRITICAL
    with pytest.raises(DataQualityError, match="test data quality is critical"):
        prepare_channel(channel, small_settings(**settings, quality={"gate": "train_and_test"}))


def test_a_gap_longer_than_max_gap_is_an_error_naming_it() -> None:
    train = wave()
    train[100:110, 0] = np.nan
    with pytest.raises(DataError, match=r"X-1: train has 1 gap\(s\) longer than impute.max_gap=5.*\[100, 110\)"):
        prepare_channel(synthetic(train), small_settings(impute={"max_gap": 5}))


@pytest.mark.parametrize(
    ("train", "test", "error", "match"),
    [
        (wave(22), None, InsufficientDataError, "X-1: train: series of length 22 is too short"),
        (wave(), wave(20), InsufficientDataError, "test of length 20 has no index to predict"),
        (np.full((100, 2), np.nan), None, DataError, "all 100 values"),
        (wave(), np.zeros((50, 3)), DataError, "equal F"),
    ],
)
def test_bad_channels_raise(train: np.ndarray, test: np.ndarray | None, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        prepare_channel(synthetic(train, test), small_settings())


def test_constant_train_is_flagged_but_trains() -> None:
    train = np.column_stack([np.full(100, 0.5), np.zeros(100)])
    prepared = prepare_channel(synthetic(train), small_settings())
    assert prepared.train_quality.constant and prepared.normalizer.constant_columns == (0,)
    assert np.isfinite(prepared.test).all() and (prepared.train[:, 0] == 0).all()


def test_features_are_added_when_enabled() -> None:
    prepared = prepare_channel(synthetic(wave()), small_settings(features={"enabled": True, "window": 50}))
    assert prepared.train_features is not None and prepared.test_features is not None
    assert prepared.train_features.shape == (300 - 50 + 1, 52)
    assert prepared.test_features.shape == (200 - 50 + 1, 52)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    train = wave()
    train[7, 0] = np.nan
    prepared = prepare_channel(synthetic(train), small_settings(features={"enabled": True, "window": 50}))
    root = save_prepared(prepared, tmp_path)
    assert root == tmp_path / "X-1"
    loaded = load_prepared(root)
    for name in ("train", "test", "X", "y", "train_imputed", "test_imputed"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(prepared, name), err_msg=name)
    assert loaded.normalizer == prepared.normalizer
    assert loaded.train_quality == prepared.train_quality and loaded.test_quality == prepared.test_quality
    assert loaded.anomalies == ((50, 60),)
    assert loaded.train_features is not None and prepared.train_features is not None
    np.testing.assert_allclose(loaded.train_features.to_numpy(), prepared.train_features.to_numpy(), rtol=1e-6)
    with pytest.raises(DataError, match="not a prepared channel directory"):
        load_prepared(tmp_path / "missing")
    meta = json.loads((root / "meta.json").read_text())
    for damaged in ({k: v for k, v in meta.items() if k != "l_s"}, {**meta, "anomalies": [[1]]}):
        (root / "meta.json").write_text(json.dumps(damaged))
        with pytest.raises(DataError, match="not a prepared channel directory"):
            load_prepared(root)
    (root / "meta.json").write_text(json.dumps(meta))
    (root / "quality.json").write_text(json.dumps({"train": prepared.train_quality.to_dict()}))
    with pytest.raises(DataError, match="KeyError: 'test'"):
        load_prepared(root)


def test_the_pipeline_imports_scipy_only_when_a_gap_needs_it() -> None:
    """Every sweep trial and benchmark task imports the pipeline; SciPy took 0.7 s of that.

    Only the ``kalman`` imputation uses it, so it is imported there, on first use.
    """
    code = (
        "import sys, numpy as np\n"
        "from pdm_ray.data.pipeline import prepare_channel\n"
        "print('scipy' in sys.modules)\n"
        "from pdm_ray.data.impute import smooth_local_level\n"
        "smooth_local_level(np.array([1.0, np.nan, 3.0]), 1.0)\n"
        "print('scipy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=SAMPLE.parents[1], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
