import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdm_ray.errors import DataError, InvalidBatchError
from pdm_ray.streaming.batch import Batch, parse_batch


def test_parses_lists_into_typed_arrays() -> None:
    batch = parse_batch({"seq": 3, "timestamps": [1, 2, 3.5], "values": [[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]]})
    assert batch.seq == 3
    assert batch.timestamps.dtype == np.float64 and batch.timestamps.tolist() == [1.0, 2.0, 3.5]
    assert batch.values.dtype == np.float32 and batch.values.shape == (3, 2)
    assert len(batch) == 3 and batch.n_features == 2


def test_a_batch_object_is_checked_too() -> None:
    bad = Batch(0, np.array([2.0, 1.0]), np.zeros((2, 1), np.float32))
    with pytest.raises(InvalidBatchError, match="strictly increase"):
        parse_batch(bad)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"seq": 0, "timestamps": [1.0]}, r"missing \['values'\]"),
        ({"seq": 0, "timestamps": [1.0], "values": [[1.0]], "extra": 1}, r"unknown \['extra'\]"),
        ({"seq": -1, "timestamps": [1.0], "values": [[1.0]]}, "non-negative integer"),
        ({"seq": True, "timestamps": [1.0], "values": [[1.0]]}, "non-negative integer"),
        ({"seq": 1.0, "timestamps": [1.0], "values": [[1.0]]}, "non-negative integer"),
        ({"seq": 0, "timestamps": [], "values": np.zeros((0, 1))}, "no readings"),
        ({"seq": 0, "timestamps": [1.0, 2.0], "values": [[1.0]]}, "2 timestamps but 1 rows"),
        ({"seq": 0, "timestamps": [1.0], "values": [1.0]}, r"shape \[n, features\]"),
        ({"seq": 0, "timestamps": [[1.0]], "values": [[1.0]]}, r"shape \[n\]"),
        ({"seq": 0, "timestamps": [1.0, 2.0], "values": [[1.0, 2.0], [1.0]]}, "rectangular"),
        ({"seq": 0, "timestamps": [1.0], "values": [["a"]]}, "real numbers"),
        ({"seq": 0, "timestamps": [1.0], "values": [[True]]}, "real numbers"),
        ({"seq": 0, "timestamps": [1.0, 2.0], "values": [[1.0], [np.nan]]}, "1 non-finite values, first at reading 1"),
        ({"seq": 0, "timestamps": [1.0], "values": [[1e39]]}, "non-finite values"),
        ({"seq": 0, "timestamps": [1.0, np.inf], "values": [[1.0], [2.0]]}, "non-finite timestamps"),
        ({"seq": 0, "timestamps": [1.0, 1.0], "values": [[1.0], [2.0]]}, r"reading 1 \(1.0\) follows 1.0"),
        ({"seq": 0, "timestamps": [1.0, 3.0, 2.0], "values": [[1.0], [2.0], [3.0]]}, "strictly increase"),
        ({"seq": 0, "timestamps": [1_700_000_000_000_000_001], "values": [[1.0]]}, r"beyond 2\*\*53"),
        ({"seq": 0, "timestamps": [-(2**60)], "values": [[1.0]]}, r"beyond 2\*\*53"),
        ("not a batch", "must be a mapping"),
    ],
)
def test_rejects_malformed_batches_naming_the_problem(raw: object, match: str) -> None:
    with pytest.raises(InvalidBatchError, match=match):
        parse_batch(raw)  # type: ignore[arg-type]


def test_invalid_batch_is_a_data_error() -> None:
    assert issubclass(InvalidBatchError, DataError)


def test_size_limit() -> None:
    raw = {"seq": 0, "timestamps": [1.0, 2.0, 3.0], "values": [[1.0], [2.0], [3.0]]}
    assert len(parse_batch(raw, max_readings=3)) == 3
    with pytest.raises(InvalidBatchError, match="3 readings exceed the limit of 2"):
        parse_batch(raw, max_readings=2)


@given(
    steps=st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=50),
    width=st.integers(1, 4),
    seq=st.integers(0, 2**62),
)
def test_increasing_finite_batches_round_trip(steps: list[float], width: int, seq: int) -> None:
    ts = np.cumsum(steps)
    values = np.arange(len(ts) * width, dtype=np.float32).reshape(len(ts), width)
    batch = parse_batch({"seq": seq, "timestamps": ts.tolist(), "values": values.tolist()})
    np.testing.assert_array_equal(batch.timestamps, ts)
    np.testing.assert_array_equal(batch.values, values)
    assert batch.seq == seq
