"""Prediction errors and their exponentially weighted moving average.

Telemanom (Hundman et al. 2018, arXiv:1802.04431, section 3.2) thresholds the smoothed
absolute errors ``e_s``: an EWMA with span ``h * smoothing_perc`` (``h`` = batch size x
window size), so that sustained errors stand out over single spikes. The average here is
pandas' ``ewm(span=...).mean()`` (``adjust=True``): at step ``t``

    e_s[t] = sum_i c**i * e[t - i] / sum_i c**i,   c = 1 - 2 / (span + 1),   i = 0..t

computed as a first-order linear filter (vectorized, in float64, returned as float32). The
filter's carry makes it streamable: smoothing a series in chunks with the carry gives the
same numbers, bit for bit, as smoothing it at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from pdm_ray.config import ThresholdSettings
from pdm_ray.errors import DataError


@dataclass(frozen=True)
class EwmaCarry:
    """What the EWMA needs from the past: the filter state and how many points it has seen.

    Attributes:
        numerator: ``c * sum_i c**i * e[t - i]`` after the last point (0.0 before any).
        count: points smoothed so far.
    """

    numerator: float = 0.0
    count: int = 0


def as_series(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float32]:
    """``x`` as a finite 1-D float32 array; raises DataError naming ``name`` otherwise."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"{name} has {bad.size} non-finite value(s), first at index {bad[0]}")
    return arr


def absolute_errors(errors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``|y_hat - y|`` of raw prediction errors, shape ``[n]`` -> ``[n]`` float32."""
    return np.abs(as_series(errors, "errors"))


def ewma_span(config: ThresholdSettings) -> int:
    """Telemanom's smoothing span: ``int(batch_size * window_size * smoothing_perc)`` (105 by default)."""
    return int(config.batch_size * config.window_size * config.smoothing_perc)


def ewma(x: npt.ArrayLike, span: int, carry: EwmaCarry | None = None) -> tuple[npt.NDArray[np.float32], EwmaCarry]:
    """Pandas-equivalent ``ewm(span=span, adjust=True).mean()`` of ``x``, resumable.

    Args:
        x: values ``[n]`` (already absolute errors for Telemanom).
        span: EWMA span >= 1; the decay is ``c = 1 - 2 / (span + 1)``.
        carry: state after the previous chunk; None starts a new series.

    Returns:
        The smoothed values ``[n]`` float32 and the carry for the next chunk.
    """
    if span < 1:
        raise DataError(f"EWMA span must be >= 1, got {span}")
    carry = carry or EwmaCarry()
    values = np.asarray(x, dtype=np.float64)
    if values.ndim != 1:
        raise DataError(f"EWMA input must be 1-D, got shape {values.shape}")
    if values.size == 0:
        return np.zeros(0, dtype=np.float32), carry
    decay = 1.0 - 2.0 / (span + 1.0)
    numerator, state = lfilter([1.0], [1.0, -decay], values, zi=np.array([carry.numerator]))
    steps = np.arange(carry.count, carry.count + values.size, dtype=np.float64)
    weight = (1.0 - decay ** (steps + 1.0)) / (1.0 - decay)
    smoothed = (numerator / weight).astype(np.float32)
    return smoothed, EwmaCarry(numerator=float(state[0]), count=carry.count + values.size)


def apply_warmup(e_s: npt.NDArray[np.float32], warmup: int) -> npt.NDArray[np.float32]:
    """Replace the first ``warmup`` smoothed errors by the mean of the first ``2 * warmup``.

    At the start the EWMA averages only a few errors, so it is as noisy as the raw errors;
    Telemanom flattens that stretch the same way. Returns a new ``[n]`` float32 array.
    """
    out = np.array(e_s, dtype=np.float32)
    if warmup > 0 and out.size:
        out[:warmup] = np.float32(out[: 2 * warmup].astype(np.float64).mean())
    return out


def short_series_settings(config: ThresholdSettings, n_errors: int) -> ThresholdSettings:
    """``config`` for a series of ``n_errors`` errors judged whole, such as an API request's window.

    The EWMA warm-up flattens the first ``warmup`` smoothed errors (250 by default, as
    Telemanom flattens a channel's first ``l_s``). A series not much longer than that,
    flattened entirely, could never be flagged and every point would score the same, so it
    flattens at most a quarter of itself. Streams keep ``config``: their length is unknown.
    """
    warmup = min(config.warmup, n_errors // 4)
    return config if warmup == config.warmup else config.model_copy(update={"warmup": warmup})


def smooth_errors(errors: npt.ArrayLike, config: ThresholdSettings) -> npt.NDArray[np.float32]:
    """Telemanom's ``e_s``: the EWMA of the absolute errors after warm-up, ``[n]`` -> ``[n]`` float32."""
    smoothed, _ = ewma(absolute_errors(errors), ewma_span(config))
    return apply_warmup(smoothed, config.warmup)
