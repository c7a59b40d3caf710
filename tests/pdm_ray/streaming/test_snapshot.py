from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pdm_ray.errors import DataError
from pdm_ray.streaming.snapshot import pack_state, read_snapshot, unpack_state, write_snapshot


def test_round_trip_of_a_nested_state(tmp_path: Path) -> None:
    state = {
        "ring": {"total": 5, "values": np.arange(6, dtype=np.float32).reshape(3, 2)},
        "events": [{"start": 1, "score": 0.5}],
        "drift": None,
        "name": "A-2",
        "scalar": np.int64(3),
    }
    path = tmp_path / "s" / "snapshot.npz"
    assert write_snapshot(path, state) > 0
    back = read_snapshot(path)
    assert back["ring"]["total"] == 5
    np.testing.assert_array_equal(back["ring"]["values"], state["ring"]["values"])
    assert back["ring"]["values"].dtype == np.float32
    assert back["events"] == [{"start": 1, "score": 0.5}]
    assert back["drift"] is None and back["name"] == "A-2" and back["scalar"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["snapshot.npz"]  # no temp file left


def test_a_new_snapshot_replaces_the_old(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.npz"
    write_snapshot(path, {"seq": 1})
    write_snapshot(path, {"seq": 2})
    assert read_snapshot(path) == {"seq": 2}


def test_missing_and_damaged_snapshots(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path / "none.npz") is None
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable snapshot"):
        read_snapshot(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(2))
    with pytest.raises(DataError, match="not a pdm-ray snapshot"):
        read_snapshot(foreign)


def test_arrays_are_stored_by_path() -> None:
    arrays, skeleton = pack_state({"a": {"b": np.zeros(2)}, "c": [np.ones(1), 2]})
    assert sorted(arrays) == ["a/b", "c/0"]
    assert skeleton == {"a": {"b": {"__array__": "a/b"}}, "c": [{"__array__": "c/0"}, 2]}


@given(
    arrays=st.lists(
        hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64]), hnp.array_shapes(max_dims=2)), max_size=3
    ),
    scalars=st.dictionaries(
        st.text("abcxyz019", min_size=1, max_size=5), st.integers() | st.text("abc ", max_size=5), max_size=3
    ),
)
def test_pack_unpack_is_lossless(arrays: list[np.ndarray], scalars: dict) -> None:
    tree = {"arrays": arrays, "scalars": scalars}
    packed, skeleton = pack_state(tree)
    back = unpack_state(packed, skeleton)
    assert back["scalars"] == scalars
    for a, b in zip(back["arrays"], arrays, strict=True):
        np.testing.assert_array_equal(a, b)
