"""Batched, jitted inference: windows -> forecasts, and a series -> one-step-ahead predictions."""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import numpy.typing as npt

from pdm_ray.data.windows import input_windows
from pdm_ray.errors import DataError, ModelNotTrainedError
from pdm_ray.models.networks import build_network
from pdm_ray.models.training import TrainedModel, check_windows, padded_batches


@partial(jax.jit, static_argnums=0)
def _forward(net: nn.Module, params: Any, x: jax.Array) -> jax.Array:
    return net.apply({"params": params}, x, train=False)


def predict(model: TrainedModel, X: npt.ArrayLike, batch_size: int = 1024) -> npt.NDArray[np.float32]:
    """Forecasts for windows ``X`` ``[N, l_s, F]`` -> float32 ``[N, n_predictions]``.

    Batches have one fixed size (the smallest power of two >= N, at most ``batch_size``) and
    the last one is padded, so any N compiles at most a handful of shapes.

    Raises:
        ModelNotTrainedError: the model has no parameters.
        DataError: ``X`` does not match the model's window length or feature count, is empty
            or not finite, or ``batch_size`` is not positive.
    """
    if model.params is None:
        raise ModelNotTrainedError("model has no parameters: train it or load a saved one before predicting")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = check_windows(model.spec, X)
    net = build_network(model.spec)
    size = min(batch_size, 1 << (len(x) - 1).bit_length())
    out = [_forward(net, model.params, x[idx]) for idx, _ in padded_batches(len(x), size)]
    return np.concatenate([np.asarray(o) for o in out])[: len(x)]


def predict_series(model: TrainedModel, series: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """One-step-ahead predictions of channel 0 for indices ``l_s .. T-1`` of ``series`` ``[T, F]``.

    Element ``i`` forecasts ``series[l_s + i, 0]`` from ``series[i : i + l_s]`` (the first of the
    window's ``n_predictions`` outputs), as Telemanom scores a test series. Returns float32
    ``[T - l_s]``. The series must already be in the model's (normalized) space.

    Raises:
        InsufficientDataError: ``T <= l_s``.
        DataError: wrong feature count or non-finite values.
    """
    return predict(model, input_windows(series, model.spec.l_s))[:, 0]
