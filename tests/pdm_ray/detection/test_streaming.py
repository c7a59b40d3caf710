"""The streaming detector: equal to the batch detector up to the documented edge, chunk-free, serializable."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.config import ThresholdSettings
from pdm_ray.data.channels import load_channel
from pdm_ray.detection import AnomalySequence, find_anomalies
from pdm_ray.detection.streaming import (
    StreamState,
    init_stream,
    state_from_arrays,
    state_to_arrays,
    update_stream,
)
from pdm_ray.errors import DataError

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
SMALL = ThresholdSettings(batch_size=10, window_size=5, smoothing_perc=0.1, error_buffer=3, warmup=5, ignore_first=10)


def _moving_average_errors(chan_id: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A channel's test telemetry and the errors of a k-point trailing-mean forecast of it."""
    y = load_channel(SAMPLE, chan_id).test[:, 0].astype(np.float64)
    csum = np.cumsum(np.concatenate([[0.0], y]))
    prediction = np.full_like(y, y[0])
    prediction[k:] = (csum[k:-1] - csum[: -k - 1]) / k
    return prediction - y, y


def _run(errors: np.ndarray, values: np.ndarray, config: ThresholdSettings, sizes: list[int]):
    state, found, at, i = init_stream(config), [], 0, 0
    while at < errors.size:
        size = sizes[i % len(sizes)]
        state, done = update_stream(state, errors[at : at + size], values[at : at + size])
        found += done
        at, i = at + size, i + 1
    return state, found


def _agreement_length(n: int, config: ThresholdSettings) -> int:
    """L of the module docstring: batch and stream flag the same points in [0, L)."""
    b, h = config.batch_size, config.batch_size * config.window_size
    if n < h:
        return 0
    k, r = divmod(n - h, b)
    if r == 0:
        return n
    return h + (k - 1) * b if k >= 1 else 0


def _assert_matches_batch(state: StreamState, streamed: list[AnomalySequence], batch: list[AnomalySequence]) -> None:
    n, config = state.seen, state.config
    agree = _agreement_length(n, config)
    assert agree == n or agree > n - 2 * config.batch_size or n < config.batch_size * (config.window_size + 1)
    assert [s for s in streamed if s.end < agree - 1] == [s for s in batch if s.end < agree - 1]
    assert all(a.end + 1 < b.start for a, b in itertools.pairwise(streamed))
    if agree == n:  # nothing differs: the open sequence is the batch's last one
        closed = streamed + ([state.open_sequence] if state.open_sequence else [])
        assert closed == batch


@pytest.mark.parametrize("chunk", [1, 70, 1000])
def test_stream_equals_batch_on_a_real_channel(chunk: int) -> None:
    errors, values = _moving_average_errors("A-5")
    config = ThresholdSettings()
    batch = find_anomalies(errors, values, config)
    state, streamed = _run(errors, values, config, [chunk])
    assert any(s.end < _agreement_length(errors.size, config) - 1 for s in batch)  # the check is not vacuous
    _assert_matches_batch(state, streamed, batch)
    assert state.seen == errors.size
    assert state.smoothed.size < config.batch_size * config.window_size


def test_stream_equals_batch_when_the_tail_is_a_whole_batch() -> None:
    errors, values = _moving_average_errors("A-5")
    config = ThresholdSettings()
    n = 2100 + 70 * 36  # r = 0: every window agrees
    state, streamed = _run(errors[:n], values[:n], config, [333])
    _assert_matches_batch(state, streamed, find_anomalies(errors[:n], values[:n], config))


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    errors = rng.normal(0, 0.1, n)
    for at in rng.integers(0, n, size=4):
        errors[at : at + 6] += rng.choice([-2.0, 2.0])
    return errors, np.sin(np.arange(n) / 7.0)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 120), min_size=1, max_size=6),
    n=st.integers(1, 400),
    seed=st.integers(0, 1000),
)
def test_chunking_does_not_matter(sizes: list[int], n: int, seed: int) -> None:
    errors, values = _synthetic(n, seed)
    reference_state, reference = _run(errors, values, SMALL, [n])
    state, found = _run(errors, values, SMALL, sizes)
    assert found == reference
    for name, arr in state_to_arrays(state).items():
        np.testing.assert_array_equal(arr, state_to_arrays(reference_state)[name], err_msg=name)
    _assert_matches_batch(state, found, find_anomalies(errors, values, SMALL))


def test_small_stream_hand_checked_windows() -> None:
    errors, values = _synthetic(95, seed=3)
    state, _ = _run(errors, values, SMALL, [7])
    # h = 50, batch 10: windows end at 50, 60, 70, 80, 90; the state keeps [50, 95)
    assert state.judged == 90
    assert state.smoothed.size == state.values.size == state.flagged.size == 45


def test_state_roundtrips_through_npz(tmp_path: Path) -> None:
    errors, values = _synthetic(300, seed=7)
    state, _ = _run(errors[:170], values[:170], SMALL, [23])
    path = tmp_path / "state.npz"
    np.savez(path, **state_to_arrays(state))
    with np.load(path, allow_pickle=False) as stored:
        restored = state_from_arrays(dict(stored))
    _, rest_restored = update_stream(restored, errors[170:], values[170:])
    _, rest = update_stream(state, errors[170:], values[170:])
    assert rest_restored == rest
    assert restored.config == SMALL and restored.seen == 170


def test_corrupt_state_is_refused() -> None:
    arrays = state_to_arrays(_run(*_synthetic(120, seed=1), SMALL, [120])[0])
    with pytest.raises(DataError, match="missing"):
        state_from_arrays({k: v for k, v in arrays.items() if k != "flagged"})
    with pytest.raises(DataError, match="smoothed has shape"):
        state_from_arrays({**arrays, "smoothed": arrays["smoothed"][1:]})
    with pytest.raises(DataError, match="invalid config"):
        state_from_arrays({**arrays, "config": np.array('{"batch_size": -1}')})


def test_bad_batches_raise_and_empty_ones_change_nothing() -> None:
    state = init_stream(SMALL)
    with pytest.raises(DataError, match="differ in length"):
        update_stream(state, [1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="non-finite"):
        update_stream(state, [np.nan], [1.0])
    same, found = update_stream(state, [], [])
    assert same is state and found == []
