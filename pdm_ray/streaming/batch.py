"""Batches of streamed readings and their validation.

A batch is all-or-nothing: any malformed part rejects the whole batch before anything is
logged or applied, so a rejected batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import InvalidBatchError

BATCH_KEYS = frozenset({"seq", "timestamps", "values"})


@dataclass(frozen=True)
class Batch:
    """A batch of readings of one sensor.

    Attributes:
        seq: the producer's sequence number for this sensor. Sequence numbers only grow;
            a batch at or below the last accepted one is a replay (acked as a duplicate).
        timestamps: float64 ``[n]``, strictly increasing (seconds, or any unit that is
            exact in float64).
        values: float32 ``[n, F]``; column 0 is the telemetry value.
    """

    seq: int
    timestamps: npt.NDArray[np.float64] = field(repr=False)
    values: npt.NDArray[np.float32] = field(repr=False)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])


_EXACT_INT = 2**53  # the largest integer span float64 holds exactly


def parse_batch(raw: Batch | Mapping[str, Any], max_readings: int | None = None) -> Batch:
    """Check a batch on its own (shape, finiteness, order) and return it as a typed ``Batch``.

    Args:
        raw: a ``Batch`` or a mapping ``{"seq": int, "timestamps": [n], "values": [n, F]}``
            (lists or arrays).
        max_readings: reject batches with more readings than this (None: no limit).

    Returns:
        A ``Batch`` with contiguous float64 timestamps and float32 values.

    Raises:
        InvalidBatchError: a missing or unknown key, a bad ``seq``, an empty batch, a shape
            or length mismatch, a non-numeric, NaN or infinite value, or timestamps that do
            not strictly increase. The message names what was wrong.
    """
    if isinstance(raw, Batch):
        seq, ts_raw, values_raw = raw.seq, raw.timestamps, raw.values
    elif isinstance(raw, Mapping):
        missing = BATCH_KEYS - raw.keys()
        unknown = raw.keys() - BATCH_KEYS
        if missing or unknown:
            parts = [
                f"missing {sorted(missing)}" if missing else "",
                f"unknown {sorted(map(str, unknown))}" if unknown else "",
            ]
            raise InvalidBatchError(f"batch keys must be {sorted(BATCH_KEYS)}: {', '.join(p for p in parts if p)}")
        seq, ts_raw, values_raw = raw["seq"], raw["timestamps"], raw["values"]
    else:
        raise InvalidBatchError(f"batch must be a mapping or Batch, got {type(raw).__name__}")
    if isinstance(seq, bool) or not isinstance(seq, (int, np.integer)) or seq < 0:
        raise InvalidBatchError(f"batch seq must be a non-negative integer, got {seq!r}")
    timestamps = _numeric(ts_raw, "timestamps", np.float64)
    values = _numeric(values_raw, "values", np.float32)
    if timestamps.ndim != 1:
        raise InvalidBatchError(f"batch {seq}: timestamps must have shape [n], got {timestamps.shape}")
    if values.ndim != 2 or values.shape[1] == 0:
        raise InvalidBatchError(f"batch {seq}: values must have shape [n, features], got {values.shape}")
    n = timestamps.shape[0]
    if n == 0:
        raise InvalidBatchError(f"batch {seq}: has no readings")
    if values.shape[0] != n:
        raise InvalidBatchError(f"batch {seq}: {n} timestamps but {values.shape[0]} rows of values")
    if max_readings is not None and n > max_readings:
        raise InvalidBatchError(f"batch {seq}: {n} readings exceed the limit of {max_readings} per batch")
    _check_finite(timestamps, "timestamps", seq)
    _check_finite(values, "values", seq)
    steps = np.diff(timestamps)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise InvalidBatchError(
            f"batch {seq}: timestamps must strictly increase, but reading {i + 1} ({float(timestamps[i + 1])!r}) "
            f"follows {float(timestamps[i])!r}"
        )
    return Batch(int(seq), timestamps, values)


def _numeric(raw: Any, name: str, dtype: type[np.floating]) -> npt.NDArray[Any]:
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InvalidBatchError(f"batch {name} are not a rectangular array: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise InvalidBatchError(f"batch {name} must be real numbers, got dtype {arr.dtype}")
    if (
        dtype is np.float64
        and np.issubdtype(arr.dtype, np.integer)
        and (arr.max(initial=0) > _EXACT_INT or arr.min(initial=0) < -_EXACT_INT)
    ):
        raise InvalidBatchError(f"batch {name}: integers beyond 2**53 are not exact in float64; send seconds")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are rejected as non-finite
        return np.ascontiguousarray(arr, dtype=dtype)


def _check_finite(arr: npt.NDArray[Any], name: str, seq: int) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise InvalidBatchError(f"batch {seq}: {int(bad.sum())} non-finite {name}, first at reading {first}")
