"""SPOT: streaming peaks-over-threshold with a generalized Pareto tail (Siffer et al., KDD 2017).

By the Pickands-Balkema-de Haan theorem the excesses of a score over a high threshold ``t``
follow a generalized Pareto distribution GPD(gamma, sigma). SPOT takes ``t`` as the ``level``
quantile of calibration scores, fits the GPD to the excesses (maximum likelihood with
``scipy.stats.genpareto``, location 0) and raises alarms above

    z_q = t + sigma / gamma * ((q * n / N_t) ** -gamma - 1)     (gamma != 0)
    z_q = t - sigma * log(q * n / N_t)                          (gamma == 0)

so that ``P(X > z_q) ~ q`` (``q`` = ``risk``, ``n`` values seen, ``N_t`` of them peaks). In the
stream a value above ``z_q`` is an alarm and stays out of the model; a value between ``t``
and ``z_q`` is a new peak and the tail is refitted; any other value is only counted.

``update_spot`` judges a chunk against the threshold in force at its start and refits once
per chunk, so chunks of one value are exactly the paper's algorithm and longer chunks trade
that for one fit per chunk. Only the latest ``max_peaks`` excesses are kept for the fit (the
counts ``n`` and ``N_t`` stay exact), which bounds the state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError
from scipy.stats import genpareto

from pdm_ray.config import SpotSettings
from pdm_ray.detection.smoothing import as_series
from pdm_ray.errors import DataError, InsufficientDataError

GAMMA_ZERO = 1e-8


@dataclass(frozen=True, eq=False)
class SpotState:
    """SPOT's model of the tail, passed from update to update.

    Attributes:
        config: SPOT settings.
        initial_threshold: ``t``, the calibration quantile that defines peaks.
        peaks: float64 ``[k]``, the latest excesses over ``t`` (``k <= max_peaks``).
        n: values counted (calibration and nominal stream values).
        n_peaks: peaks counted, ``N_t``.
        gamma: GPD shape.
        sigma: GPD scale.
        threshold: ``z_q``, the alarm threshold.
    """

    config: SpotSettings
    initial_threshold: float
    peaks: npt.NDArray[np.float64] = field(repr=False)
    n: int
    n_peaks: int
    gamma: float
    sigma: float
    threshold: float


def gpd_quantile(t: float, gamma: float, sigma: float, risk: float, n: int, n_peaks: int) -> float:
    """``z_q`` of the module docstring: the value exceeded with probability ``risk``."""
    ratio = risk * n / n_peaks
    if abs(gamma) < GAMMA_ZERO:
        return float(t - sigma * np.log(ratio))
    return float(t + sigma / gamma * (ratio ** (-gamma) - 1.0))


def fit_tail(excesses: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Maximum-likelihood GPD ``(gamma, sigma)`` of positive excesses ``[k]`` (location 0).

    Raises:
        DataError: the fit does not give a finite shape and a positive scale.
    """
    gamma, _, sigma = genpareto.fit(excesses, floc=0.0)
    if not (np.isfinite(gamma) and np.isfinite(sigma) and sigma > 0):
        raise DataError(f"GPD fit of {excesses.size} excesses failed: gamma={gamma}, sigma={sigma}")
    return float(gamma), float(sigma)


def fit_spot(calibration: npt.ArrayLike, config: SpotSettings) -> SpotState:
    """Calibrate SPOT on nominal scores ``[n]`` (e.g. smoothed validation errors).

    Raises:
        DataError: the scores are not a finite 1-D array.
        InsufficientDataError: fewer than ``min_peaks`` values lie above the ``level`` quantile.
    """
    x = as_series(calibration, "calibration").astype(np.float64)
    if x.size == 0:
        raise InsufficientDataError("calibration is empty")
    t = float(np.quantile(x, config.level))
    excesses = x[x > t] - t
    if excesses.size < config.min_peaks:
        raise InsufficientDataError(
            f"{excesses.size} calibration values above the {config.level} quantile; need min_peaks={config.min_peaks}"
        )
    gamma, sigma = fit_tail(excesses)
    return SpotState(
        config=config,
        initial_threshold=t,
        peaks=excesses[-config.max_peaks :].copy(),
        n=int(x.size),
        n_peaks=int(excesses.size),
        gamma=gamma,
        sigma=sigma,
        threshold=gpd_quantile(t, gamma, sigma, config.risk, x.size, excesses.size),
    )


def update_spot(state: SpotState, scores: npt.ArrayLike) -> tuple[SpotState, npt.NDArray[np.bool_]]:
    """Judge new scores ``[c]``; return the next state and the alarm mask ``[c]``.

    Raises:
        DataError: the scores are not a finite 1-D array.
    """
    x = as_series(scores, "scores").astype(np.float64)
    alarms = x > state.threshold
    if x.size == 0:
        return state, alarms
    t = state.initial_threshold
    new_peaks = x[~alarms & (x > t)] - t
    n = state.n + int(np.sum(~alarms))
    n_peaks = state.n_peaks + int(new_peaks.size)
    peaks, gamma, sigma = state.peaks, state.gamma, state.sigma
    if new_peaks.size:
        peaks = np.concatenate([peaks, new_peaks])[-state.config.max_peaks :]
        gamma, sigma = fit_tail(peaks)
    next_state = SpotState(
        config=state.config,
        initial_threshold=t,
        peaks=peaks,
        n=n,
        n_peaks=n_peaks,
        gamma=gamma,
        sigma=sigma,
        threshold=gpd_quantile(t, gamma, sigma, state.config.risk, n, n_peaks),
    )
    return next_state, alarms


SPOT_SCALARS = ("initial_threshold", "n", "n_peaks", "gamma", "sigma", "threshold")


def spot_to_arrays(state: SpotState) -> dict[str, npt.NDArray]:
    """The state as named npy-compatible arrays (0-d for scalars, JSON for the config); no pickling."""
    arrays: dict[str, npt.NDArray] = {"config": np.array(state.config.model_dump_json()), "peaks": state.peaks}
    for name in SPOT_SCALARS:
        arrays[name] = np.array(getattr(state, name))
    return arrays


def spot_from_arrays(arrays: dict[str, npt.ArrayLike]) -> SpotState:
    """Rebuild a state from ``spot_to_arrays`` output (e.g. an ``np.load``-ed npz).

    Raises:
        DataError: a key is missing or unknown, the config is invalid, or the peaks are not 1-D.
    """
    expected = {"config", "peaks", *SPOT_SCALARS}
    if set(arrays) != expected:
        raise DataError(
            f"SPOT state keys: missing {sorted(expected - set(arrays))}, unknown {sorted(set(arrays) - expected)}"
        )
    try:
        config = SpotSettings.model_validate(json.loads(str(np.asarray(arrays["config"]))))
    except (ValidationError, json.JSONDecodeError) as exc:
        raise DataError(f"SPOT state: invalid config: {exc}") from None
    peaks = np.asarray(arrays["peaks"], dtype=np.float64)
    if peaks.ndim != 1 or peaks.size > config.max_peaks:
        raise DataError(f"SPOT state: peaks have shape {peaks.shape}, expected 1-D of at most {config.max_peaks}")
    return SpotState(
        config=config,
        initial_threshold=float(np.asarray(arrays["initial_threshold"])),
        peaks=peaks,
        n=int(np.asarray(arrays["n"])),
        n_peaks=int(np.asarray(arrays["n_peaks"])),
        gamma=float(np.asarray(arrays["gamma"])),
        sigma=float(np.asarray(arrays["sigma"])),
        threshold=float(np.asarray(arrays["threshold"])),
    )
