"""Timestamps of forecast requests: parse them, find the sampling interval, step ahead.

Forecast ``k`` (``k = 1 .. horizon``) of a window that ends at ``t_last`` is for time
``t_last + k * dt``, where ``dt`` is the median spacing of the input timestamps. The
median keeps one missing or late reading from skewing the step. (A former system stamped
forecasts starting at the first input timestamp, and another one interval late; the tests
pin ``k = 1`` to exactly one interval after the last input.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from pdm_ray.errors import DataError

_MAX_EPOCH_S = 1e11  # ~ year 5138: far beyond any sensor, still a valid datetime
_EPOCH = pd.Timestamp(0, tz="UTC")


class TimestampError(DataError):
    """Request timestamps are unparsable, not strictly increasing or out of range."""

    field = "timestamps"


@dataclass(frozen=True)
class FutureTimes:
    """Times of ``horizon`` forecasts.

    Attributes:
        epoch_s: float64 ``[horizon]`` seconds since 1970-01-01 UTC.
        iso: ISO-8601 UTC strings, one per entry of ``epoch_s``.
        interval_s: the sampling interval used (median input spacing).
    """

    epoch_s: npt.NDArray[np.float64]
    iso: tuple[str, ...]
    interval_s: float


def to_epoch_seconds(timestamps: list[float | str]) -> npt.NDArray[np.float64]:
    """Parse ISO-8601 strings (no zone = UTC) and/or epoch seconds into float64 ``[T]``.

    Strings are parsed in one vectorized ``pandas.to_datetime`` call.

    Raises:
        TimestampError: an entry is neither; the message names the first bad index.
    """
    out = np.empty(len(timestamps), dtype=np.float64)
    is_str = np.fromiter((isinstance(ts, str) for ts in timestamps), dtype=bool, count=len(timestamps))
    if (~is_str).any():
        out[~is_str] = np.asarray([ts for ts in timestamps if not isinstance(ts, str)], dtype=np.float64)
    if is_str.any():
        strings = pd.Series([ts for ts in timestamps if isinstance(ts, str)], dtype=object)
        try:
            parsed = pd.to_datetime(strings, utc=True, format="ISO8601")
        except (ValueError, OverflowError):
            raise TimestampError(f"timestamps[{_first_unparsable(timestamps)}] is not an ISO-8601 time") from None
        out[is_str] = (parsed - _EPOCH).dt.total_seconds().to_numpy(dtype=np.float64)
    return out


def _first_unparsable(timestamps: list[float | str]) -> int:
    """Index of the first string pandas cannot parse (error path only)."""
    for i, ts in enumerate(timestamps):
        if isinstance(ts, str):
            try:
                pd.to_datetime(pd.Series([ts], dtype=object), utc=True, format="ISO8601")
            except (ValueError, OverflowError):
                return i
    return 0


def future_times(timestamps: list[float | str], horizon: int) -> FutureTimes:
    """Times of the next ``horizon`` steps after the last input timestamp.

    Args:
        timestamps: ``[T]`` input times, ``T >= 2``, strictly increasing.
        horizon: number of forecast steps, ``>= 1``.

    Returns:
        ``FutureTimes`` with ``epoch_s[k - 1] = t[-1] + k * median(diff(t))``.

    Raises:
        TimestampError: fewer than two timestamps, unparsable or not strictly increasing
            times, or future times beyond the supported range.
    """
    if len(timestamps) < 2:
        raise TimestampError(f"need at least 2 timestamps to infer the sampling interval, got {len(timestamps)}")
    t = to_epoch_seconds(timestamps)
    steps = np.diff(t)
    if (steps <= 0).any():
        first = int(np.argmax(steps <= 0)) + 1
        raise TimestampError(
            f"timestamps must be strictly increasing: timestamps[{first}] is not after timestamps[{first - 1}]"
        )
    interval = float(np.median(steps))
    epoch = t[-1] + interval * np.arange(1, horizon + 1, dtype=np.float64)
    if abs(t[0]) > _MAX_EPOCH_S or abs(epoch[-1]) > _MAX_EPOCH_S:
        raise TimestampError(f"timestamps must lie within ±{_MAX_EPOCH_S:.0e} epoch seconds")
    millis = np.round(epoch * 1e3).astype(np.int64).astype("datetime64[ms]")
    iso = tuple(f"{s}Z" for s in np.datetime_as_string(millis, unit="ms"))
    return FutureTimes(epoch_s=epoch, iso=iso, interval_s=interval)
