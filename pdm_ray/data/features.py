"""Named features of every sliding window, computed for all windows at once.

The value column (column 0) is cut into windows ``V`` float64 ``[N, w]`` with
``sliding_window_view`` (a view, no copy); every feature is one numpy reduction over
the last axis, so there is no Python loop per window. Command columns 1.. feed the
command-activity counts through cumulative sums. Row ``i`` describes the window that
ends at time ``t = window - 1 + i * step`` (the DataFrame index).

Features (``k`` = each of ``widths`` and the full window, labelled ``w{k}`` / ``full``):

- ``value``: the last value.
- ``mean_*, std_*, min_*, max_*, q{p}_*``: statistics of the last ``k`` values.
- ``lag_{k}``: the value ``k`` steps before the end; ``diff_{k}``: last minus it;
  ``roc_{k}``: ``diff_{k} / k``, the rate of change per step.
- ``ewma_{s}``: exponentially weighted mean with span ``s`` (``alpha = 2 / (s + 1)``),
  normalized over the window's weights (pandas ``ewm(span=s, adjust=True)``).
- ``zscore``: ``(value - mean) / std`` of the window.
- ``fft_band_{i}``: share of the (mean-removed) power spectrum in the ``i``-th of
  ``fft_bands`` equal frequency bands; ``fft_dominant_freq``: strongest frequency
  (cycles per step); ``spectral_entropy``: Shannon entropy of the normalized spectrum
  divided by its maximum (0 = one tone, 1 = flat).
- ``acf_{k}``: autocorrelation at lag ``k``.
- ``peaks``: strict local maxima; ``zero_crossings``: sign changes around the mean;
  ``skew``, ``kurtosis`` (excess, biased moments); ``trend_slope``: least-squares slope per step.
- ``cmd_active``: active command flags summed over the window; ``cmd_distinct``: command
  columns active at least once; ``cmd_changes``: steps where the flag vector changes.

A constant window gives 0 for every scale-free feature (z-score, spectra,
autocorrelation, moments), never NaN.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from pdm_ray.config import FeatureSettings
from pdm_ray.errors import DataError, InsufficientDataError


def _width_labels(settings: FeatureSettings) -> list[str]:
    return [f"w{k}" for k in settings.widths] + ["full"]


def _quantile_label(q: float) -> str:
    return f"q{q * 100:g}"


def feature_names(settings: FeatureSettings) -> list[str]:
    """Column names of ``compute_features`` for these settings, in order."""
    names = ["value"]
    for label in _width_labels(settings):
        names += [f"{stat}_{label}" for stat in ("mean", "std", "min", "max")]
        names += [f"{_quantile_label(q)}_{label}" for q in settings.quantiles]
    names += [f"lag_{k}" for k in settings.lags]
    names += [f"diff_{k}" for k in settings.lags]
    names += [f"roc_{k}" for k in settings.lags]
    names += [f"ewma_{s}" for s in settings.ewma_spans]
    names.append("zscore")
    names += [f"fft_band_{i}" for i in range(settings.fft_bands)]
    names += ["fft_dominant_freq", "spectral_entropy"]
    names += [f"acf_{k}" for k in settings.acf_lags]
    names += ["peaks", "zero_crossings", "skew", "kurtosis", "trend_slope"]
    names += ["cmd_active", "cmd_distinct", "cmd_changes"]
    return names


def _safe_div(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``num / den`` with 0 where ``den`` is 0 (a constant window)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _check_fits(settings: FeatureSettings, window: int, t: int) -> None:
    if window < 4:
        raise DataError(f"feature window must be at least 4 steps, got {window}")
    too_wide = sorted({v for v in [*settings.widths, *settings.lags, *settings.acf_lags] if v >= window})
    if too_wide:
        raise DataError(f"feature widths/lags {too_wide} do not fit in a window of {window} steps")
    if settings.fft_bands > window // 2:
        raise DataError(f"fft_bands={settings.fft_bands} exceeds the {window // 2} frequency bins of window={window}")
    if t < window:
        raise InsufficientDataError(f"series of length {t} is shorter than one feature window of {window} steps")


def _spectral(d: npt.NDArray[np.float64], bands: int) -> dict[str, npt.NDArray[np.float64]]:
    """Band shares, dominant frequency and entropy of mean-removed windows ``d`` ``[N, w]``."""
    w = d.shape[1]
    power = np.abs(np.fft.rfft(d, axis=1)[:, 1 : w // 2 + 1]) ** 2  # [N, w // 2], DC dropped
    total = power.sum(axis=1)
    edges = np.linspace(0, power.shape[1], bands + 1).round().astype(int)
    cum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
    out = {f"fft_band_{i}": _safe_div(cum[:, edges[i + 1]] - cum[:, edges[i]], total) for i in range(bands)}
    out["fft_dominant_freq"] = np.where(total > 0, (np.argmax(power, axis=1) + 1) / w, 0.0)
    p = _safe_div(power, total[:, None])
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    out["spectral_entropy"] = -plogp.sum(axis=1) / np.log(power.shape[1])  # w >= 4: at least 2 bins
    return out


def _command_counts(
    flags: npt.NDArray[np.float64], window: int, ends: npt.NDArray[np.int64]
) -> dict[str, npt.NDArray[np.float64]]:
    """Activity of command flags ``[T, C]`` in the windows ending at ``ends`` ``[N]``."""
    n = ends.size
    if flags.shape[1] == 0:
        zero = np.zeros(n)
        return {"cmd_active": zero, "cmd_distinct": zero, "cmd_changes": zero}
    active = flags != 0
    per_col = np.concatenate([np.zeros((1, active.shape[1])), np.cumsum(active, axis=0)])  # [T + 1, C]
    in_window = per_col[ends + 1] - per_col[ends + 1 - window]  # [N, C]
    change = np.concatenate([[0], (active[1:] != active[:-1]).any(axis=1)])
    cum_change = np.concatenate([[0], np.cumsum(change)])
    return {
        "cmd_active": in_window.sum(axis=1),
        "cmd_distinct": (in_window > 0).sum(axis=1),
        "cmd_changes": cum_change[ends + 1] - cum_change[ends + 2 - window],
    }


def compute_features(series: npt.ArrayLike, settings: FeatureSettings, *, window: int | None = None) -> pd.DataFrame:
    """Features of every window of ``series``.

    Args:
        series: finite float ``[T, F]`` (or ``[T]``); column 0 is the value, columns 1..
            are command flags.
        settings: widths, lags, spans and bands.
        window: window length; ``settings.window`` when None.

    Returns:
        float32 DataFrame ``[N, len(feature_names(settings))]`` with
        ``N = (T - window) // step + 1``, indexed by the window's last time step ``t``.

    Raises:
        DataError: not a finite numeric ``[T, F]`` array, or a width/lag/band that does not
            fit the window.
        InsufficientDataError: ``T < window``.
    """
    arr = np.asarray(series)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(f"series must have shape [time, features], got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"series must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        first = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"series has non-finite values (first at time {first}); impute before computing features")
    w = settings.window if window is None else window
    _check_fits(settings, w, arr.shape[0])
    v = sliding_window_view(arr[:, 0], w)[:: settings.step]  # [N, w] view
    ends = np.arange(w - 1, arr.shape[0], settings.step)
    last = v[:, -1]
    mean = v.mean(axis=1)
    d = v - mean[:, None]
    var = (d**2).mean(axis=1)
    std = np.sqrt(var)

    cols: dict[str, npt.NDArray[np.float64]] = {"value": last}
    for k, label in zip([*settings.widths, w], _width_labels(settings), strict=True):
        sub = v[:, -k:]
        cols[f"mean_{label}"] = sub.mean(axis=1)
        cols[f"std_{label}"] = sub.std(axis=1)
        cols[f"min_{label}"] = sub.min(axis=1)
        cols[f"max_{label}"] = sub.max(axis=1)
        for q, values in zip(settings.quantiles, np.quantile(sub, settings.quantiles, axis=1), strict=True):
            cols[f"{_quantile_label(q)}_{label}"] = values
    for k in settings.lags:
        cols[f"lag_{k}"] = v[:, -1 - k]
    for k in settings.lags:
        cols[f"diff_{k}"] = last - v[:, -1 - k]
    for k in settings.lags:
        cols[f"roc_{k}"] = (last - v[:, -1 - k]) / k
    for span in settings.ewma_spans:
        weights = (1.0 - 2.0 / (span + 1.0)) ** np.arange(w - 1, -1, -1)
        cols[f"ewma_{span}"] = v @ weights / weights.sum()
    cols["zscore"] = _safe_div(last - mean, std)
    cols.update(_spectral(d, settings.fft_bands))
    for k in settings.acf_lags:
        cols[f"acf_{k}"] = _safe_div((d[:, :-k] * d[:, k:]).sum(axis=1), var * w)
    cols["peaks"] = ((v[:, 1:-1] > v[:, :-2]) & (v[:, 1:-1] > v[:, 2:])).sum(axis=1)
    cols["zero_crossings"] = (d[:, :-1] * d[:, 1:] < 0).sum(axis=1)
    cols["skew"] = _safe_div((d**3).mean(axis=1), var**1.5)
    cols["kurtosis"] = np.where(var > 0, _safe_div((d**4).mean(axis=1), var**2) - 3.0, 0.0)
    centred_t = np.arange(w) - (w - 1) / 2.0
    cols["trend_slope"] = d @ centred_t / (centred_t**2).sum()
    cols.update(_command_counts(arr[:, 1:], w, ends))

    frame = pd.DataFrame({name: np.asarray(cols[name], dtype=np.float32) for name in feature_names(settings)})
    frame.index = pd.Index(ends, name="t")
    return frame
