"""Scaling fitted on train and applied unchanged to test data and streams.

Three methods: z-score (mean/std), min-max to ``[0, 1]`` (min/range) and robust
(median/IQR, which a few spikes in train cannot stretch). A ``Normalizer`` is plain data
(``to_dict``/``from_dict`` JSON), so a trained model carries the exact scaling it saw.

By default only column 0 (the telemetry value) is fitted: columns 1.. of the Telemanom
layout are one-hot command flags and pass through unchanged (``columns: all`` fits them
too). A fitted column whose scale is below ``min_scale`` (a constant series) is listed in
``constant_columns`` and scaled by 1, so it is shifted but never divided by zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from pdm_ray.config import NormalizeSettings
from pdm_ray.errors import DataError

logger = logging.getLogger(__name__)

Method = Literal["zscore", "minmax", "robust"]
Columns = Literal["value", "all"]
FORMAT_VERSION = 1


def _as_2d(x: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what} must be a non-empty [time, features] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{what} must be numeric, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        t, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{what} has {int(bad.sum())} non-finite values (first at time {t}, column {col}); impute first"
        )
    return arr.astype(np.float64, copy=False)


@dataclass(frozen=True)
class Normalizer:
    """A fitted scaling: ``(x - center) / scale`` per column.

    Attributes:
        method: how ``center``/``scale`` were fitted.
        columns: ``value`` (column 0 fitted, the rest pass through) or ``all``.
        center: one per feature; 0 for pass-through columns.
        scale: one per feature, always > 0; 1 for pass-through and constant columns.
        constant_columns: fitted columns whose scale was below ``min_scale`` in train.
    """

    method: Method
    columns: Columns
    center: tuple[float, ...]
    scale: tuple[float, ...]
    constant_columns: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in get_args(Method):
            raise DataError(f"normalizer method must be one of {get_args(Method)}, got {self.method!r}")
        if self.columns not in get_args(Columns):
            raise DataError(f"normalizer columns must be one of {get_args(Columns)}, got {self.columns!r}")
        if not self.center or len(self.center) != len(self.scale):
            raise DataError(
                f"normalizer needs one center and scale per feature, got {len(self.center)} and {len(self.scale)}"
            )
        params = np.asarray([*self.center, *self.scale], dtype=np.float64)
        if not np.isfinite(params).all() or min(self.scale) <= 0:
            raise DataError(f"normalizer center/scale must be finite with scale > 0, got {self.center} / {self.scale}")
        if any(not 0 <= c < len(self.center) for c in self.constant_columns):
            raise DataError(f"constant_columns {self.constant_columns} out of range for {len(self.center)} features")

    @property
    def n_features(self) -> int:
        return len(self.center)

    def _params(self, x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if x.shape[1] != self.n_features:
            raise DataError(f"expected {self.n_features} features (as fitted), got {x.shape[1]}")
        return np.asarray(self.center), np.asarray(self.scale)

    def transform(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scale ``x`` float ``[T, F]`` (``F`` as fitted) to float32 ``[T, F]``.

        Raises:
            DataError: wrong shape or feature count, or non-finite values.
        """
        arr = _as_2d(x, "series to normalize")
        center, scale = self._params(arr)
        return ((arr - center) / scale).astype(np.float32)

    def inverse_transform(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Undo ``transform``: float32 ``[T, F]`` back in the original units."""
        arr = _as_2d(x, "series to denormalize")
        center, scale = self._params(arr)
        return (arr * scale + center).astype(np.float32)

    def transform_value(self, v: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scale values of column 0 of any shape (a stream of readings, targets ``[N, n_pred]``)."""
        arr = np.asarray(v, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise DataError(f"values to normalize have {int((~np.isfinite(arr)).sum())} non-finite entries")
        return ((arr - self.center[0]) / self.scale[0]).astype(np.float32)

    def inverse_value(self, v: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Undo ``transform_value``: predictions of column 0 back in the original units."""
        arr = np.asarray(v, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise DataError(f"values to denormalize have {int((~np.isfinite(arr)).sum())} non-finite entries")
        return (arr * self.scale[0] + self.center[0]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; ``from_dict(to_dict())`` is this normalizer."""
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "columns": self.columns,
            "center": list(self.center),
            "scale": list(self.scale),
            "constant_columns": list(self.constant_columns),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """Rebuild a normalizer from ``to_dict`` output.

        Raises:
            DataError: missing keys, an unknown format version or invalid values.
        """
        if not isinstance(data, dict):
            raise DataError(f"normalizer must be a JSON object, got {type(data).__name__}")
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(f"normalizer format_version must be {FORMAT_VERSION}, got {data.get('format_version')!r}")
        missing = [k for k in ("method", "columns", "center", "scale") if k not in data]
        if missing:
            raise DataError(f"normalizer is missing key(s) {missing}")
        try:
            return cls(
                method=data["method"],
                columns=data["columns"],
                center=tuple(float(v) for v in data["center"]),
                scale=tuple(float(v) for v in data["scale"]),
                constant_columns=tuple(int(v) for v in data.get("constant_columns", ())),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"normalizer has a malformed value: {exc}") from exc


def fit_normalizer(train: npt.ArrayLike, settings: NormalizeSettings) -> Normalizer:
    """Fit a normalizer on the train series.

    Args:
        train: float ``[T, F]`` (or ``[T]``), finite.
        settings: method, which columns, and the scale below which a column is constant.

    Raises:
        DataError: the series is empty, not 2-D, or has non-finite values.
    """
    arr = _as_2d(train, "train series")
    fitted = arr if settings.columns == "all" else arr[:, :1]
    if settings.method == "zscore":
        center, scale = fitted.mean(axis=0), fitted.std(axis=0)
    elif settings.method == "minmax":
        center = fitted.min(axis=0)
        scale = fitted.max(axis=0) - center
    else:
        q25, center, q75 = np.quantile(fitted, [0.25, 0.5, 0.75], axis=0)
        scale = q75 - q25
        # IQR is 0 when one value fills half the series (common in step-like telemetry), yet the
        # rest may still vary: fall back to the std there so those excursions are still scaled.
        flat_iqr = (scale < settings.min_scale) & (fitted.std(axis=0) >= settings.min_scale)
        if flat_iqr.any():
            logger.info("robust scaling: IQR is 0 in column(s) %s; using their std", np.flatnonzero(flat_iqr).tolist())
            scale = np.where(flat_iqr, fitted.std(axis=0), scale)
    constant = np.flatnonzero(scale < settings.min_scale)
    if constant.size:
        logger.warning("constant column(s) %s in train: scaled by 1 instead of %s", constant.tolist(), settings.method)
    scale = np.where(scale < settings.min_scale, 1.0, scale)
    n = arr.shape[1]
    full_center = np.zeros(n)
    full_scale = np.ones(n)
    full_center[: fitted.shape[1]] = center
    full_scale[: fitted.shape[1]] = scale
    return Normalizer(
        method=settings.method,
        columns=settings.columns,
        center=tuple(float(v) for v in full_center),
        scale=tuple(float(v) for v in full_scale),
        constant_columns=tuple(int(c) for c in constant),
    )
