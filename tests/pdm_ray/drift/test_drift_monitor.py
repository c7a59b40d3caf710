"""DriftMonitor: incremental counts, the ring buffer, state round trips and a seeded planted shift."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.config import DriftSettings
from pdm_ray.drift import DriftMonitor, Severity, check_drift, detect_drift
from pdm_ray.errors import DataError, InsufficientDataError

CFG = DriftSettings(current_size=200, min_samples=50)
SMALL = DriftSettings(current_size=7, min_samples=3, n_bins=4)


def _reference(seed: int = 0, n: int = 1000) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n).astype(np.float32)


def _first_drift_index(monitor: DriftMonitor, stream: np.ndarray, batch: int) -> int | None:
    for start in range(0, stream.size, batch):
        monitor.update(stream[start : start + batch])
        if monitor.filled >= monitor.cfg.min_samples and monitor.check().drift:
            return monitor.n_seen
    return None


def test_planted_mean_shift_is_reported_within_one_window_of_it() -> None:
    rng = np.random.default_rng(42)
    reference = rng.normal(size=1000)
    shift, batch = 600, 20
    stream = np.concatenate([rng.normal(size=shift), rng.normal(1.0, 1.0, size=400)])
    # The oracle: the one-shot detector on the newest current_size points after each batch.
    expected = next(
        (
            end
            for end in range(batch, stream.size + 1, batch)
            if end >= CFG.min_samples
            and detect_drift(reference, stream[max(0, end - CFG.current_size) : end], CFG).drift
        ),
        None,
    )
    # No drift while the window holds only in-distribution points; the shift is reported
    # before the window holds nothing else.
    assert expected is not None and shift < expected <= shift + CFG.current_size
    monitor = DriftMonitor(CFG, reference)
    assert _first_drift_index(monitor, stream, batch) == expected
    monitor.update(stream[expected:])
    assert monitor.check().severity is Severity.CRITICAL


batches = st.lists(
    st.lists(st.integers(-4, 4), min_size=0, max_size=12).map(lambda v: np.asarray(v, dtype=np.float32)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(batches=batches)
def test_incremental_counts_match_the_last_window(batches: list[np.ndarray]) -> None:
    reference = np.arange(-3, 4, dtype=np.float32).repeat(2)
    monitor = DriftMonitor(SMALL, reference)
    for batch in batches:
        monitor.update(batch)
    stream = np.concatenate(batches)
    last = stream[-SMALL.current_size :]
    np.testing.assert_array_equal(monitor.current(), last)
    expected = np.bincount(
        np.searchsorted(monitor.reference.edges, last, side="right"), minlength=monitor.reference.counts.size
    )
    np.testing.assert_array_equal(monitor.current_counts(), expected)
    assert monitor.n_seen == stream.size and monitor.filled == last.size


def test_check_equals_one_shot_on_the_window() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(CFG, _reference())
    for _ in range(9):
        monitor.update(rng.normal(0.3, 1.0, size=37))
    assert monitor.check() == check_drift(monitor.reference, monitor.current(), CFG)


def _equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key]


@pytest.mark.parametrize("points", [0, 120, 200, 517])
def test_state_round_trips_through_npy_and_json(tmp_path, points: int) -> None:
    rng = np.random.default_rng(points)
    monitor = DriftMonitor(CFG, _reference())
    monitor.update(rng.normal(size=points))
    state = monitor.to_state()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    for key, value in arrays.items():
        np.save(tmp_path / f"{key}.npy", value)
    (tmp_path / "state.json").write_text(json.dumps(scalars))
    loaded = json.loads((tmp_path / "state.json").read_text())
    loaded.update({key: np.load(tmp_path / f"{key}.npy") for key in arrays})

    restored = DriftMonitor.from_state(CFG, loaded)
    _equal_states(restored.to_state(), state)
    np.testing.assert_array_equal(restored.current_counts(), monitor.current_counts())
    more = rng.normal(0.5, 1.0, size=90)
    monitor.update(more)
    restored.update(more)
    _equal_states(restored.to_state(), monitor.to_state())
    assert restored.check() == monitor.check()


@pytest.mark.parametrize(("points", "new_size"), [(517, 300), (517, 120), (150, 120), (150, 300)])
def test_a_state_of_another_current_size_keeps_its_newest_points(points: int, new_size: int) -> None:
    assert CFG.current_size == 200
    monitor = DriftMonitor(CFG, _reference())
    monitor.update(np.random.default_rng(points).normal(size=points))
    restored = DriftMonitor.from_state(CFG.model_copy(update={"current_size": new_size}), monitor.to_state())
    kept = min(points, CFG.current_size, new_size)
    np.testing.assert_array_equal(restored.current(), monitor.current()[-kept:])
    assert restored.filled == kept and restored.to_state()["n_seen"] == points
    np.testing.assert_array_equal(restored.current_counts().sum(), kept)


def test_from_state_rejects_mismatches() -> None:
    state = DriftMonitor(CFG, _reference()).to_state()
    with pytest.raises(DataError, match=r"missing \['n_seen'\]"):
        DriftMonitor.from_state(CFG, {k: v for k, v in state.items() if k != "n_seen"})
    nan_window = state["window"].copy()
    nan_window[0] = np.nan
    full = DriftMonitor(CFG, _reference())
    full.update(np.zeros(CFG.current_size))
    with pytest.raises(DataError, match="non-finite"):
        DriftMonitor.from_state(CFG, {**full.to_state(), "window": nan_window})
    with pytest.raises(DataError, match="window must be float32"):
        DriftMonitor.from_state(CFG, {**state, "window": state["window"].astype(np.float64)})
    with pytest.raises(DataError, match="inconsistent filled=10, position=3"):
        DriftMonitor.from_state(CFG, {**state, "filled": 10, "position": 3, "n_seen": 10})
    with pytest.raises(DataError, match="'position' must be an integer"):
        DriftMonitor.from_state(CFG, {**state, "position": 1.5})


def test_check_needs_min_samples() -> None:
    monitor = DriftMonitor(CFG, _reference())
    monitor.update(np.zeros(49))
    with pytest.raises(InsufficientDataError, match="holds 49 points; a check needs at least 50"):
        monitor.check()


def test_bad_batch_leaves_monitor_unchanged() -> None:
    monitor = DriftMonitor(CFG, _reference())
    monitor.update(np.ones(60))
    before = monitor.to_state()
    with pytest.raises(DataError, match="batch has a non-finite value at index 2"):
        monitor.update([0.0, 1.0, np.nan])
    with pytest.raises(DataError, match="1-D"):
        monitor.update(np.ones((2, 2)))
    _equal_states(monitor.to_state(), before)


def test_reset_reference_rebins_the_window() -> None:
    rng = np.random.default_rng(5)
    monitor = DriftMonitor(CFG, _reference())
    shifted = rng.normal(2.0, 1.0, size=400)
    monitor.update(shifted)
    assert monitor.check().severity is Severity.CRITICAL
    monitor.reset_reference(shifted)
    assert not monitor.check().drift
    expected = np.bincount(
        np.searchsorted(monitor.reference.edges, monitor.current(), side="right"),
        minlength=monitor.reference.counts.size,
    )
    np.testing.assert_array_equal(monitor.current_counts(), expected)


def test_reference_too_small() -> None:
    with pytest.raises(InsufficientDataError, match="reference has 10 values"):
        DriftMonitor(CFG, np.zeros(10))
