import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdm_ray.errors import DataError
from pdm_ray.streaming.ring import RingBuffer


def _rows(start: int, n: int, width: int = 2) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(start, start + n, dtype=np.float64)
    values = np.repeat(ts[:, None], width, axis=1).astype(np.float32)
    return ts, values


def test_keeps_the_newest_readings_in_order() -> None:
    ring = RingBuffer(4, 2)
    ring.extend(*_rows(0, 3))
    ring.extend(*_rows(3, 3))  # wraps: holds 2, 3, 4, 5
    ts, values = ring.last(10)
    assert ts.tolist() == [2.0, 3.0, 4.0, 5.0]
    assert values[:, 1].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert len(ring) == 4 and ring.total == 6
    assert ring.last(2)[0].tolist() == [4.0, 5.0]
    assert ring.last(0)[0].shape == (0,)


def test_a_batch_longer_than_capacity_keeps_its_tail() -> None:
    ring = RingBuffer(3, 2)
    ring.extend(*_rows(0, 2))
    ring.extend(*_rows(2, 7))
    assert ring.last(3)[0].tolist() == [6.0, 7.0, 8.0]
    assert ring.total == 9


def test_timestamps_of_absolute_indices() -> None:
    ring = RingBuffer(3, 2)
    ring.extend(*_rows(100, 5))  # absolute indices 0..4 hold timestamps 100..104; 0 and 1 evicted
    out = ring.timestamps_at(np.array([0, 2, 4, 5]))
    assert np.isnan(out[0]) and np.isnan(out[3])
    assert out[1:3].tolist() == [102.0, 104.0]


def test_rejects_a_wrong_width_and_bad_capacity() -> None:
    ring = RingBuffer(3, 2)
    with pytest.raises(DataError, match=r"shape \(2, 2\)"):
        ring.extend(np.zeros(2), np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="capacity > 0"):
        RingBuffer(0, 1)


@given(
    capacity=st.integers(1, 20),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=10),
)
def test_matches_the_tail_of_everything_appended(capacity: int, sizes: list[int]) -> None:
    ring = RingBuffer(capacity, 2)
    start = 0
    for n in sizes:
        ring.extend(*_rows(start, n))
        start += n
    ts, values = ring.last(capacity)
    expected = np.arange(max(0, start - capacity), start, dtype=np.float64)
    np.testing.assert_array_equal(ts, expected)
    np.testing.assert_array_equal(values[:, 0], expected.astype(np.float32))
    restored = RingBuffer.from_state(ring.to_state())
    assert restored.digest() == ring.digest()
    assert restored.total == ring.total
    restored.extend(*_rows(start, 3))
    ring.extend(*_rows(start, 3))
    assert restored.digest() == ring.digest()
