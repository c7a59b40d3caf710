"""Loading the Telemanom layout, and a clear error for every malformed input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.data import largest_first, list_channels, load_channel, load_channels, load_labels, train_sizes
from pdm_ray.errors import DataError, InvalidChannelError

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
FULL_SMAP = Path(__file__).resolve().parents[4] / "shared" / "data" / "nasa_smap"
HEADER = "chan_id,spacecraft,anomaly_sequences,class,num_values\n"


def make_dir(tmp_path: Path, train: np.ndarray, test: np.ndarray, labels: str | None = None, cid: str = "X-1") -> Path:
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    np.save(tmp_path / "train" / f"{cid}.npy", train)
    np.save(tmp_path / "test" / f"{cid}.npy", test)
    if labels is not None:
        (tmp_path / "labeled_anomalies.csv").write_text(HEADER + labels)
    return tmp_path


def test_sample_channels_load_as_float32_with_labels() -> None:
    assert list_channels(SAMPLE) == ["A-2", "A-5", "A-6", "T-1"]
    ch = load_channel(SAMPLE, "T-1")
    assert ch.train.dtype == np.float32 and ch.test.dtype == np.float32
    assert ch.train.shape == (2875, 25) and ch.test.shape == (8612, 25)
    assert ch.spacecraft == "SMAP"
    assert ch.anomalies == ((2399, 3898), (6550, 6585))
    assert ch.classes == ("point", "contextual")


def test_largest_channels_come_first_and_ties_keep_their_order() -> None:
    assert largest_first({"A-5": 10, "A-2": 30, "T-1": 30, "A-6": 20}) == ["A-2", "T-1", "A-6", "A-5"]


def test_train_sizes_read_headers_and_order_largest_first(tmp_path: Path) -> None:
    sizes = train_sizes(SAMPLE, list_channels(SAMPLE))
    assert sizes["T-1"] == 2875 * 25
    assert largest_first(sizes)[0] == "T-1"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "X-1.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match=r"X-1\.npy: not a readable \.npy array"):
        train_sizes(tmp_path, ["X-1"])


def test_sample_covers_point_and_contextual_classes() -> None:
    classes = {c for ch in load_channels(SAMPLE) for c in ch.classes}
    assert classes == {"point", "contextual"}


def test_duplicate_label_rows_are_merged(tmp_path: Path) -> None:
    rows = 'X-1,SMAP,"[[50, 60]]",[point],100\nX-1,SMAP,"[[10, 20]]",[contextual],100\n'
    root = make_dir(tmp_path, np.zeros((30, 2)), np.zeros((100, 2)), rows)
    ch = load_channel(root, "X-1")
    assert ch.anomalies == ((10, 20), (50, 60))
    assert ch.classes == ("contextual", "point")


@pytest.mark.skipif(not FULL_SMAP.exists(), reason="full SMAP set (../shared/data/nasa_smap) is absent")
def test_full_smap_p2_listed_twice_is_one_channel() -> None:
    labels = load_labels(FULL_SMAP)
    assert len(labels) == 54
    assert labels["P-2"].intervals == ((5300, 6420), (5350, 6575))
    assert sum(len(v.intervals) for v in labels.values()) == 69


def test_channel_without_labels_loads(tmp_path: Path) -> None:
    root = make_dir(tmp_path, np.ones((30, 3)), np.ones((40, 3)))
    ch = load_channel(root, "X-1")
    assert not ch.has_labels and ch.anomalies == ()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_channel(tmp_path / "nope", "A-1")
    assert str(err.value) == f"{tmp_path / 'nope'}: data directory not found"


def test_missing_file(tmp_path: Path) -> None:
    root = make_dir(tmp_path, np.zeros((30, 2)), np.zeros((40, 2)))
    with pytest.raises(DataError) as err:
        load_channel(root, "Y-9")
    assert str(err.value) == f"{root / 'train' / 'Y-9.npy'}: file not found"


def test_feature_count_mismatch(tmp_path: Path) -> None:
    root = make_dir(tmp_path, np.zeros((30, 25)), np.zeros((40, 24)))
    with pytest.raises(DataError) as err:
        load_channel(root, "X-1")
    assert str(err.value) == f"{root}: channel X-1: train has 25 features but test has 24"


def test_non_finite_values_report_count_and_first_index(tmp_path: Path) -> None:
    test = np.zeros((40, 2))
    test[7, 1] = np.nan
    test[12, 0] = np.inf
    root = make_dir(tmp_path, np.zeros((30, 2)), test)
    with pytest.raises(DataError) as err:
        load_channel(root, "X-1")
    assert str(err.value) == (
        f"{root / 'test' / 'X-1.npy'}: 2 non-finite values, first at time index 7 ('pdm-ray data prepare' imputes gaps)"
    )
    kept = load_channel(root, "X-1", allow_missing=True).test  # for the pipeline to count and impute
    assert np.isnan(kept[7, 1]) and np.isinf(kept[12, 0]) and np.isfinite(np.delete(kept, [7, 12], axis=0)).all()


def test_label_interval_outside_test_series(tmp_path: Path) -> None:
    root = make_dir(tmp_path, np.zeros((30, 2)), np.zeros((40, 2)), 'X-1,SMAP,"[[30, 40]]",[point],40\n')
    with pytest.raises(DataError) as err:
        load_channel(root, "X-1")
    assert str(err.value) == (
        f"{root / 'labeled_anomalies.csv'}: channel X-1: label interval [30, 40] "
        "is outside the test series of length 40"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("X-1,SMAP\n", "line 2: expected 5 columns, got 2"),
        ('X-1,SMAP,"[[1, 2]",[point],40\n', "line 2: malformed 'anomaly_sequences': '[[1, 2]' is not a list"),
        ('X-1,SMAP,"[[5, 2]]",[point],40\n', "line 2: malformed sequence [5, 2] for X-1"),
        ('X-1,SMAP,"[[1, 2]]","[point, point]",40\n', "line 2: 1 sequences but 2 classes for X-1"),
    ],
)
def test_malformed_csv_rows(tmp_path: Path, row: str, message: str) -> None:
    root = make_dir(tmp_path, np.zeros((30, 2)), np.zeros((40, 2)), row)
    with pytest.raises(DataError) as err:
        load_labels(root)
    assert str(err.value) == f"{root / 'labeled_anomalies.csv'}: {message}"


@pytest.mark.parametrize("bad", ["", "-A", "a/b", "../etc", "x" * 65, "A 1"])
def test_invalid_channel_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidChannelError) as err:
        load_channel(tmp_path, bad)
    assert str(err.value) == f"invalid sensor id {bad!r}: must match ^[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}$"


def test_channel_copy_with_new_id_is_accepted(tmp_path: Path) -> None:
    """Any directory in the layout works, including channels never seen before."""
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    shutil.copy(SAMPLE / "train" / "A-5.npy", tmp_path / "train" / "NEW_7.npy")
    shutil.copy(SAMPLE / "test" / "A-5.npy", tmp_path / "test" / "NEW_7.npy")
    ch = load_channel(tmp_path, "NEW_7")
    assert ch.n_features == 25 and not ch.has_labels
