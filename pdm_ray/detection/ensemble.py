"""Combining the prediction errors of several forecasters into one series to threshold.

Two models (say the LSTM and the Transformer) make errors of different sizes, so a plain
average would let the worse one dominate. Each model's absolute errors are divided by its
own error scale on validation data (its mean absolute validation error), averaged, and
multiplied back by the mean scale so the result stays in the units of the values; the
Telemanom threshold's error-scale check compares errors with values and needs that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pdm_ray.detection.smoothing import as_series
from pdm_ray.errors import DataError


def error_scale(validation_errors: npt.ArrayLike) -> float:
    """A model's error scale: its mean absolute validation error ``[n]`` -> float.

    Raises:
        DataError: the errors are empty, not finite, or all zero (no scale to divide by).
    """
    e = as_series(validation_errors, "validation_errors")
    if e.size == 0:
        raise DataError("validation_errors is empty: cannot estimate an error scale")
    scale = float(np.mean(np.abs(e.astype(np.float64))))
    if scale <= 0:
        raise DataError("validation_errors are all zero: the error scale would be 0")
    return scale


def combine_errors(errors: Sequence[npt.ArrayLike], scales: Sequence[float]) -> npt.NDArray[np.float32]:
    """``mean_i(|e_i| / s_i) * mean_i(s_i)`` of one error series ``[n]`` per model.

    Args:
        errors: each model's raw prediction errors on the same ``n`` points.
        scales: each model's ``error_scale`` (positive).

    Returns:
        The combined absolute errors, float32 ``[n]`` (ready for ``detect``).

    Raises:
        DataError: no models, counts or lengths differ, or a scale is not positive and finite.
    """
    if not errors:
        raise DataError("combine_errors needs at least one error series")
    if len(errors) != len(scales):
        raise DataError(f"{len(errors)} error series but {len(scales)} scales")
    s = np.asarray(scales, dtype=np.float64)
    if not np.all(np.isfinite(s) & (s > 0)):
        raise DataError(f"error scales must be positive and finite, got {s.tolist()}")
    series = [as_series(e, f"errors[{i}]") for i, e in enumerate(errors)]
    lengths = {x.size for x in series}
    if len(lengths) != 1:
        raise DataError(f"error series differ in length: {[x.size for x in series]}")
    stacked = np.abs(np.stack(series).astype(np.float64)) / s[:, None]
    return (stacked.mean(axis=0) * s.mean()).astype(np.float32)
