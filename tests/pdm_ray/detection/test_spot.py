"""SPOT: the quantile formula by hand, calibration on a known tail, the stream against the paper's loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.config import SpotSettings
from pdm_ray.detection.spot import (
    fit_spot,
    fit_tail,
    gpd_quantile,
    spot_from_arrays,
    spot_to_arrays,
    update_spot,
)
from pdm_ray.errors import DataError, InsufficientDataError


def test_gpd_quantile_hand_checked() -> None:
    # q n / N_t = 0.01 * 1000 / 20 = 0.5
    assert gpd_quantile(1.0, 0.0, 2.0, 0.01, 1000, 20) == pytest.approx(1.0 + 2.0 * math.log(2.0))
    assert gpd_quantile(1.0, 0.5, 2.0, 0.01, 1000, 20) == pytest.approx(1.0 + 4.0 * (math.sqrt(2.0) - 1.0))


def test_exponential_tail_is_recovered() -> None:
    # Exp(1): excesses over any t are Exp(1) = GPD(0, 1); P(X > z) = 1e-4 at z = ln(1e4) = 9.21.
    x = np.random.default_rng(0).exponential(size=50_000)
    state = fit_spot(x, SpotSettings())
    assert abs(state.gamma) < 0.1 and state.sigma == pytest.approx(1.0, abs=0.1)
    assert state.threshold == pytest.approx(math.log(1e4), abs=0.5)
    assert state.n == 50_000 and state.n_peaks == 1000


def test_alarm_rate_on_fresh_nominal_data_is_near_the_risk() -> None:
    rng = np.random.default_rng(1)
    config = SpotSettings(risk=1e-3)
    state = fit_spot(rng.exponential(size=20_000), config)
    _, alarms = update_spot(state, rng.exponential(size=20_000))
    assert 5 <= alarms.sum() <= 60  # expected about 20


def _paper_spot(calibration: np.ndarray, stream: np.ndarray, config: SpotSettings) -> list[bool]:
    """SPOT as the paper's loop, one value at a time (no peak cap), as an oracle."""
    t = float(np.quantile(calibration, config.level))
    peaks = list(calibration[calibration > t] - t)
    n = calibration.size
    gamma, sigma = fit_tail(np.array(peaks))
    z = gpd_quantile(t, gamma, sigma, config.risk, n, len(peaks))
    out = []
    for x in stream:
        if x > z:
            out.append(True)
            continue
        out.append(False)
        n += 1
        if x > t:
            peaks.append(x - t)
            gamma, sigma = fit_tail(np.array(peaks))
        z = gpd_quantile(t, gamma, sigma, config.risk, n, len(peaks))
    return out


def test_chunks_of_one_are_the_papers_algorithm() -> None:
    rng = np.random.default_rng(2)
    config = SpotSettings(risk=1e-2, level=0.9)
    calibration = rng.exponential(size=300)
    stream = rng.exponential(size=120)
    stream[[30, 80]] = 25.0
    state, found = fit_spot(calibration, config), []
    for x in stream.astype(np.float32):
        state, alarm = update_spot(state, [x])
        found.append(bool(alarm[0]))
    assert found == _paper_spot(calibration.astype(np.float32), stream.astype(np.float32), config)
    assert found[30] and found[80]


@settings(max_examples=10, deadline=None)
@given(chunk=st.integers(1, 100), seed=st.integers(0, 100))
def test_a_chunk_is_judged_by_the_threshold_at_its_start(chunk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    state = fit_spot(rng.exponential(size=500), SpotSettings(max_peaks=40))
    stream = rng.exponential(size=200)
    stream[150] = 50.0
    n_alarms = 0
    for at in range(0, stream.size, chunk):
        part = stream[at : at + chunk]
        before = state.threshold
        state, alarms = update_spot(state, part)
        np.testing.assert_array_equal(alarms, part.astype(np.float32) > before)
        assert state.peaks.size <= 40
        n_alarms += int(alarms.sum())
    assert n_alarms >= 1
    assert state.n == 500 + 200 - n_alarms  # alarms stay out of the counts


def test_bad_input() -> None:
    with pytest.raises(InsufficientDataError, match="min_peaks"):
        fit_spot(np.arange(100.0), SpotSettings(level=0.98, min_peaks=10))
    with pytest.raises(DataError, match="non-finite"):
        fit_spot([1.0, np.nan], SpotSettings())
    state = fit_spot(np.random.default_rng(3).exponential(size=1000), SpotSettings())
    with pytest.raises(DataError, match="1-D"):
        update_spot(state, [[1.0]])
    same, alarms = update_spot(state, [])
    assert same is state and alarms.size == 0


def test_state_roundtrips_through_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    state = fit_spot(rng.exponential(size=2000), SpotSettings(max_peaks=30))
    path = tmp_path / "spot.npz"
    np.savez(path, **spot_to_arrays(state))
    with np.load(path, allow_pickle=False) as stored:
        restored = spot_from_arrays(dict(stored))
    stream = rng.exponential(size=300)
    (a, alarms_a), (b, alarms_b) = update_spot(state, stream), update_spot(restored, stream)
    np.testing.assert_array_equal(alarms_a, alarms_b)
    assert a.threshold == b.threshold and restored.n == 2000
    with pytest.raises(DataError, match="missing"):
        spot_from_arrays({k: v for k, v in spot_to_arrays(state).items() if k != "gamma"})
    with pytest.raises(DataError, match="at most 30"):
        spot_from_arrays({**spot_to_arrays(state), "peaks": np.ones(31)})
