"""Sliding windows for the Telemanom forecaster (Hundman et al. 2018, arXiv:1802.04431).

The forecaster reads ``l_s`` past steps of every feature and predicts the next
``n_predictions`` values of channel 0 (the telemetry value). Windows are strided views
(``sliding_window_view``) copied once into contiguous float32 arrays, so building them
costs one memcpy and no Python loop per time step.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from pdm_ray.errors import DataError, InsufficientDataError


def _as_series(series: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Validate ``series`` as a non-empty finite ``[T, F]`` float32 array (``[T]`` becomes ``[T, 1]``)."""
    arr = np.asarray(series)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"series must have shape [time, features], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"series must be non-empty, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"series must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        first = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"series has non-finite values, first at time index {first}")
    return arr


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}")


def make_windows(
    series: npt.ArrayLike, l_s: int, n_predictions: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cut a series into (input window, next values of channel 0) training pairs.

    Pair ``i`` is ``X[i] = series[i : i + l_s]`` and ``y[i] = series[i + l_s : i + l_s + n_predictions, 0]``.

    Args:
        series: ``[T, F]`` (or ``[T]``, read as one feature).
        l_s: input window length.
        n_predictions: how many future steps of channel 0 to predict.

    Returns:
        ``X`` float32 ``[N, l_s, F]`` and ``y`` float32 ``[N, n_predictions]`` with
        ``N = T - l_s - n_predictions + 1``.

    Raises:
        DataError: ``series`` is not a non-empty finite ``[T, F]`` array, or ``l_s`` /
            ``n_predictions`` is not a positive integer.
        InsufficientDataError: ``T < l_s + n_predictions``.
    """
    _check_positive("l_s", l_s)
    _check_positive("n_predictions", n_predictions)
    arr = _as_series(series)
    t = arr.shape[0]
    if t < l_s + n_predictions:
        raise InsufficientDataError(
            f"series of length {t} is too short for windows of l_s={l_s} inputs + n_predictions={n_predictions}"
        )
    n = t - l_s - n_predictions + 1
    # sliding_window_view puts the window axis last: [T - l_s + 1, F, l_s] -> [N, l_s, F].
    x = sliding_window_view(arr[: n + l_s - 1], l_s, axis=0).transpose(0, 2, 1)
    y = sliding_window_view(arr[l_s:, 0], n_predictions)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def input_windows(series: npt.ArrayLike, l_s: int) -> npt.NDArray[np.float32]:
    """Every input window that has a next step to predict, for one-step-ahead prediction.

    Window ``i`` is ``series[i : i + l_s]`` and predicts index ``i + l_s``, so the windows
    cover target indices ``l_s .. T - 1`` as Telemanom scores them.

    Args:
        series: ``[T, F]`` (or ``[T]``).
        l_s: input window length.

    Returns:
        float32 ``[T - l_s, l_s, F]``.

    Raises:
        DataError: bad series or ``l_s``.
        InsufficientDataError: ``T <= l_s`` (no index left to predict).
    """
    _check_positive("l_s", l_s)
    arr = _as_series(series)
    t = arr.shape[0]
    if t <= l_s:
        raise InsufficientDataError(f"series of length {t} is too short: need more than l_s={l_s} steps")
    x = sliding_window_view(arr[: t - 1], l_s, axis=0).transpose(0, 2, 1)
    return np.ascontiguousarray(x)
