"""Filling gaps (NaN runs) in a series, never across a gap longer than ``max_gap``.

Methods for the value column (column 0):

- ``linear``: straight line between the observed neighbours (``np.interp``).
- ``ffill``: the last observed value carries forward.
- ``seasonal``: seasonal decomposition (as ``na_seadec`` in imputeTS, Moritz &
  Bartz-Beielstein 2017): the period is the highest autocorrelation peak, the per-phase
  mean is removed, the remainder is interpolated linearly and the phase mean added back.
- ``kalman``: the smoothed level of a local-level model ``y_t = mu_t + eps_t``,
  ``mu_t = mu_{t-1} + eta_t`` (Durbin & Koopman 2012, ch. 2). Its smoothed mean under a
  diffuse prior solves ``(W + D'D / q) mu = W y`` with ``W`` = observed indicator, ``D`` the
  first difference and ``q = var(eta) / var(eps)``, a tridiagonal system solved in O(T)
  (``solveh_banded``) instead of a Python loop over time. ``q`` is fitted by the Whittle
  likelihood of the first differences.

Columns 1.. (one-hot command flags) are always forward-filled: interpolating a flag
would invent fractional commands. A gap touching either end is filled from its one
observed side. Gaps longer than ``max_gap`` stay NaN and are listed in ``unfilled``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pdm_ray.config import ImputeSettings
from pdm_ray.errors import DataError

logger = logging.getLogger(__name__)

Q_RANGE = (1e-6, 1e6)


@dataclass(frozen=True)
class Gap:
    """A run of missing values ``[start, stop)`` in one column."""

    column: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ImputeResult:
    """Filled series and where it was filled.

    Attributes:
        values: float32, same shape as the input; NaN only inside ``unfilled`` gaps.
        imputed: bool, same shape; True where a missing value was filled.
        unfilled: gaps longer than ``max_gap``, left NaN.
        method: the method used on column 0 (``linear`` when ``seasonal`` found no period).
        period: the seasonal period found, else None.
    """

    values: npt.NDArray[np.float32] = field(repr=False)
    imputed: npt.NDArray[np.bool_] = field(repr=False)
    unfilled: tuple[Gap, ...]
    method: str
    period: int | None = None

    @property
    def complete(self) -> bool:
        """No value is left missing."""
        return not self.unfilled


def _gaps(missing: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Starts and lengths of the runs of True in ``missing`` ``[T]``."""
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def _linear(x: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    t = np.arange(x.size)
    out = x.copy()
    out[missing] = np.interp(t[missing], t[~missing], x[~missing])
    return out


def _ffill(x: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    idx = np.where(missing, 0, np.arange(x.size))
    last = np.maximum.accumulate(idx)
    first = int(np.argmax(~missing))
    last[:first] = first  # a leading gap has nothing before it: take the first observed value
    return x[last]


def find_period(
    x: npt.ArrayLike, min_period: int = 2, max_period: int | None = None, min_acf: float = 0.3
) -> int | None:
    """The lag of the highest autocorrelation peak in ``[min_period, max_period]``.

    Args:
        x: float ``[T]``, finite.
        min_period, max_period: lags searched (``max_period`` None = ``T // 2``).
        min_acf: the peak's autocorrelation must reach this, else there is no period.

    Returns:
        The period, or None (no peak high enough, or a constant series).
    """
    arr = np.asarray(x, dtype=np.float64)
    arr = arr - arr.mean()
    n = arr.size
    spectrum = np.fft.rfft(arr, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), 2 * n)[:n]
    if acf[0] <= 0:
        return None
    acf = acf / acf[0]
    hi = min(n // 2 if max_period is None else max_period, n - 2)
    if hi < min_period:
        return None
    lags = np.arange(max(min_period, 1), hi + 1)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] >= min_acf)]
    if peaks.size == 0:
        return None
    return int(peaks[np.argmax(acf[peaks])])


def _seasonal(
    x: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_], settings: ImputeSettings
) -> tuple[npt.NDArray[np.float64], int | None]:
    period = find_period(_linear(x, missing), settings.min_period, settings.max_period, settings.min_acf)
    if period is None:
        logger.info("seasonal imputation: no period with autocorrelation >= %s; filling linearly", settings.min_acf)
        return _linear(x, missing), None
    phase = np.arange(x.size) % period
    counts = np.bincount(phase[~missing], minlength=period)
    sums = np.bincount(phase[~missing], weights=x[~missing], minlength=period)
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    profile = np.where(np.isnan(profile), np.nanmean(profile), profile)
    season = profile[phase]
    return _linear(x - season, missing) + season, period


def estimate_local_level(y: npt.ArrayLike) -> float:
    """Signal-to-noise ratio ``q = var(eta) / var(eps)`` of a local-level model (Whittle 1953).

    The first differences of a local level are MA(1) with spectral density proportional to
    ``q + 2 (1 - cos w)``; ``q`` minimizes the Whittle likelihood of their periodogram with
    the scale profiled out (a 1-D bounded search, each step one vectorized pass). Missing
    values are dropped; a difference across ``k`` dropped steps holds ``k + 1`` level steps,
    so the fitted ratio is scaled by ``observed / T`` to undo that on average.

    Args:
        y: float ``[T]`` with NaN where missing.

    Returns:
        ``q`` in ``[1e-6, 1e6]``; 1.0 when fewer than 9 values are observed or the
        differences are all equal.
    """
    arr = np.asarray(y, dtype=np.float64)
    observed = arr[np.isfinite(arr)]
    if observed.size < 9:
        return 1.0
    d = np.diff(observed)
    d = d - d.mean()
    m = d.size
    freqs = 2.0 * np.pi * np.arange(1, m // 2 + 1) / m
    periodogram = np.abs(np.fft.rfft(d)[1 : m // 2 + 1]) ** 2 / m
    if not periodogram.any():
        return 1.0
    shape = 2.0 * (1.0 - np.cos(freqs))

    def profile_nll(log_q: float) -> float:
        g = np.exp(log_q) + shape
        return float(np.log(g).sum() + g.size * np.log(np.mean(periodogram / g)))

    from scipy.optimize import minimize_scalar  # 0.3 s to import: only series with gaps pay it

    lo, hi = np.log(Q_RANGE[0]), np.log(Q_RANGE[1])
    best = minimize_scalar(profile_nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
    return float(np.clip(np.exp(best.x) * observed.size / arr.size, *Q_RANGE))


def smooth_local_level(y: npt.ArrayLike, q: float) -> npt.NDArray[np.float64]:
    """Smoothed level ``E[mu_t | y]`` of a local-level model with a diffuse initial state.

    Solves the tridiagonal system ``(W + D'D / q) mu = W y`` (Durbin & Koopman 2012, ch. 2:
    the Kalman smoother's mean is this penalized least-squares solution).

    Args:
        y: float ``[T]`` with NaN where missing; at least one value observed.
        q: ``var(eta) / var(eps)`` > 0.

    Returns:
        float64 ``[T]``, finite everywhere.
    """
    from scipy.linalg import solveh_banded  # 0.4 s to import: only series with gaps pay it

    arr = np.asarray(y, dtype=np.float64)
    observed = np.isfinite(arr)
    n = arr.size
    if n == 1:
        return arr.copy()
    lam = 1.0 / q
    laplacian_diag = np.full(n, 2.0)
    laplacian_diag[[0, -1]] = 1.0
    ab = np.zeros((2, n))
    ab[0, 1:] = -lam
    ab[1] = observed + lam * laplacian_diag
    return solveh_banded(ab, np.where(observed, arr, 0.0))


def _fill_value_column(
    x: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_], settings: ImputeSettings
) -> tuple[npt.NDArray[np.float64], str, int | None]:
    if settings.method == "linear":
        return _linear(x, missing), "linear", None
    if settings.method == "ffill":
        return _ffill(x, missing), "ffill", None
    if settings.method == "seasonal":
        filled, period = _seasonal(x, missing, settings)
        return filled, "seasonal" if period else "linear", period
    y = np.where(missing, np.nan, x)
    return np.where(missing, smooth_local_level(y, estimate_local_level(y)), x), "kalman", None


def impute(series: npt.ArrayLike, settings: ImputeSettings) -> ImputeResult:
    """Fill the NaN gaps of ``series`` with ``settings.method`` (column 0) and forward fill (flags).

    Args:
        series: float ``[T]`` or ``[T, F]``; NaN marks a missing value.
        settings: method and ``max_gap``.

    Returns:
        ``ImputeResult`` with values and mask shaped like ``series``.

    Raises:
        DataError: not a non-empty 1-D/2-D numeric array, infinite values (a fault, not a
            gap), or a column with no observed value.
    """
    raw = np.asarray(series)
    if raw.ndim not in (1, 2) or raw.size == 0:
        raise DataError(f"series to impute must be a non-empty [time] or [time, features] array, got shape {raw.shape}")
    if not np.issubdtype(raw.dtype, np.number):
        raise DataError(f"series to impute must be numeric, got dtype {raw.dtype}")
    arr = raw.astype(np.float64).reshape(raw.shape[0], -1)
    if np.isinf(arr).any():
        t, col = (int(v) for v in np.argwhere(np.isinf(arr))[0])
        raise DataError(f"series has infinite values (first at time {t}, column {col}); only NaN is imputed")
    missing = np.isnan(arr)
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        raise DataError(f"column(s) {empty.tolist()} have no observed value: nothing to impute from")
    out = arr.copy()
    imputed = np.zeros_like(missing)
    unfilled: list[Gap] = []
    method, period = settings.method, None
    for col in np.flatnonzero(missing.any(axis=0)):
        starts, lengths = _gaps(missing[:, col])
        too_long = lengths > settings.max_gap
        unfilled.extend(
            Gap(int(col), int(s), int(s + n)) for s, n in zip(starts[too_long], lengths[too_long], strict=True)
        )
        if col == 0:
            filled, method, period = _fill_value_column(arr[:, 0], missing[:, 0], settings)
        else:
            filled = _ffill(arr[:, col], missing[:, col])
        # The missing steps, in order, are the gaps laid end to end: give each its gap's length.
        fill_here = missing[:, col].copy()
        fill_here[fill_here] = np.repeat(lengths, lengths) <= settings.max_gap
        out[fill_here, col] = filled[fill_here]
        imputed[fill_here, col] = True
    if unfilled:
        logger.warning("%d gap(s) longer than max_gap=%d left unfilled", len(unfilled), settings.max_gap)
    shape = raw.shape
    return ImputeResult(
        values=out.astype(np.float32).reshape(shape),
        imputed=imputed.reshape(shape),
        unfilled=tuple(sorted(unfilled, key=lambda g: (g.start, g.column))),
        method=method,
        period=period,
    )
