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
_EPOCH = pd.Timestamp(0, tz="UTC").as_unit("us")


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

    Strings are parsed in one vectorized ``pandas.to_datetime`` call. Every time must lie
    within ``±1e11`` epoch seconds, as the request schema bounds numbers.

    Raises:
        TimestampError: an entry is neither, or lies out of range; the message names the
            first bad index.
    """
    out = np.empty(len(timestamps), dtype=np.float64)
    is_str = np.fromiter((isinstance(ts, str) for ts in timestamps), dtype=bool, count=len(timestamps))
    if (~is_str).any():
        out[~is_str] = np.asarray([ts for ts in timestamps if not isinstance(ts, str)], dtype=np.float64)
    if is_str.any():
        out[is_str] = _iso_seconds([ts for ts in timestamps if isinstance(ts, str)])
        unparsable = is_str & np.isnan(out)
        if unparsable.any():
            raise TimestampError(f"timestamps[{int(np.argmax(unparsable))}] is not an ISO-8601 time")
    outside = ~(np.abs(out) <= _MAX_EPOCH_S)  # also NaN
    if outside.any():
        raise TimestampError(
            f"timestamps[{int(np.argmax(outside))}] does not lie within ±{_MAX_EPOCH_S:.0e} epoch seconds"
        )
    return out


def _iso_seconds(strings: list[str]) -> npt.NDArray[np.float64]:
    """Epoch seconds of ISO-8601 strings, NaN for strings that are not.

    pandas also reads ``now``, ``today``, ``NaT`` and ``nan``, so a string must start with
    its four-digit year. Fractions are cut to microseconds first: a string with nanoseconds
    would make pandas hold every time in nanoseconds, which end in 2262, and turn later years
    in the same request into NaT.
    """
    series = pd.Series(strings, dtype=object)
    iso = series.where(series.str.match("[0-9]{4}")).str.replace(r"(\.[0-9]{6})[0-9]+", r"\1", regex=True)
    return _since_epoch(pd.to_datetime(iso, utc=True, format="ISO8601", errors="coerce"))


def _since_epoch(parsed: pd.Series) -> npt.NDArray[np.float64]:
    """Seconds since 1970 of UTC times, in microseconds (every four-digit year fits); NaT gives NaN."""
    return (parsed.dt.as_unit("us") - _EPOCH).dt.total_seconds().to_numpy(dtype=np.float64, copy=True)


def future_times(timestamps: list[float | str], horizon: int) -> FutureTimes:
    """Times of the next ``horizon`` steps after the last input timestamp.

    Args:
        timestamps: ``[T]`` input times, ``T >= 2``, strictly increasing.
        horizon: number of forecast steps, ``>= 1``.

    Returns:
        ``FutureTimes`` with ``epoch_s[k - 1] = t[-1] + k * median(diff(t))``.

    Raises:
        TimestampError: fewer than two timestamps, unparsable, out of range or not strictly
            increasing times, or future times beyond the supported range.
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
    if abs(epoch[-1]) > _MAX_EPOCH_S:
        raise TimestampError(f"forecast times must lie within ±{_MAX_EPOCH_S:.0e} epoch seconds")
    millis = np.round(epoch * 1e3).astype(np.int64).astype("datetime64[ms]")
    iso = tuple(f"{s}Z" for s in np.datetime_as_string(millis, unit="ms"))
    return FutureTimes(epoch_s=epoch, iso=iso, interval_s=interval)
