"""Telemanom's dynamic threshold on a stream: state as data, ``init`` / ``update``.

``init_stream(config)`` makes a ``StreamState``; ``update_stream(state, errors, values)``
consumes any number of new points and returns the next state and the anomalous sequences
that became final (absolute indices, inclusive). The state keeps the EWMA carry, the last
``h - batch_size`` judged points plus the not-yet-judged ones (``h = batch_size *
window_size``; fewer than ``h`` in all, so memory is O(window)), their values and flags,
and the sequence still open at the judged frontier. Each time a batch completes, the window
of the last ``h`` points is judged by ``threshold.evaluate_window``, exactly as the batch
detector judges it, so the result does not depend on how the stream is chunked.

Edge effect against ``threshold.detect`` on the first ``n`` points: the stream judges
nothing before ``h`` points and then judges windows ending at ``h + k * batch_size``; the
batch detector's last window instead covers the tail, ``[K * batch_size, n)`` with ``K =
(n - h) // batch_size``. All other windows are the same, so the flagged points and their
scores agree on ``[0, L)`` with ``L = n`` when ``r = (n - h) % batch_size`` is 0,
``L = h + (K - 1) * batch_size > n - 2 * batch_size`` when ``r > 0`` and ``K >= 1``, and
``L = 0`` when ``n < h + batch_size`` and ``r > 0``. Sequences ending before ``L - 1`` are
identical; the stream reports a sequence only once a nominal point follows it
(``StreamState.open_sequence`` shows the one still open).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from pdm_ray.config import ThresholdSettings
from pdm_ray.detection.smoothing import EwmaCarry, apply_warmup, as_series, ewma, ewma_span
from pdm_ray.detection.threshold import AnomalySequence, evaluate_window, runs_to_sequences
from pdm_ray.errors import DataError

NO_SEQUENCE = -1


@dataclass(frozen=True, eq=False)
class StreamState:
    """Everything the streaming detector carries between updates (see the module docstring).

    Attributes:
        config: threshold settings.
        seen: points consumed so far.
        carry: the EWMA state after ``seen`` points.
        smoothed: float32 ``[b]``, smoothed errors of the last ``b`` points (``b < h``).
        values: float32 ``[b]``, their true values.
        flagged: bool ``[b]``, which of them were flagged (only judged points can be).
        open_start: start of the sequence that reaches the judged frontier, or -1.
        open_score: its score so far (-inf without one).
    """

    config: ThresholdSettings
    seen: int = 0
    carry: EwmaCarry = field(default_factory=EwmaCarry)
    smoothed: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    values: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    flagged: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool), repr=False)
    open_start: int = NO_SEQUENCE
    open_score: float = float("-inf")

    @property
    def judged(self) -> int:
        """How many points have been judged: 0 before ``h``, then ``h + k * batch_size``."""
        return judged_frontier(self.seen, self.config)

    @property
    def open_sequence(self) -> AnomalySequence | None:
        """The anomalous sequence still open at the judged frontier (it may grow), if any."""
        if self.open_start == NO_SEQUENCE:
            return None
        return AnomalySequence(start=self.open_start, end=self.judged - 1, score=self.open_score)


def judged_frontier(seen: int, config: ThresholdSettings) -> int:
    """Points judged after ``seen`` points: the end of the last complete window."""
    h = config.batch_size * config.window_size
    if seen < h:
        return 0
    return h + (seen - h) // config.batch_size * config.batch_size


def _buffer_start(judged: int, config: ThresholdSettings) -> int:
    """First absolute index the state keeps: the start of the next window (0 before any)."""
    if judged == 0:
        return 0
    return judged - config.batch_size * config.window_size + config.batch_size


def init_stream(config: ThresholdSettings) -> StreamState:
    """A fresh streaming detector state."""
    return StreamState(config=config)


def update_stream(
    state: StreamState, errors: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[StreamState, list[AnomalySequence]]:
    """Consume new prediction errors and true values; return the new state and final sequences.

    Args:
        state: the state after the previous update.
        errors: raw prediction errors ``y_hat - y`` of the new points, ``[c]`` (any ``c >= 0``).
        values: true values of the same points, ``[c]``.

    Returns:
        The next state and the sequences that ended in this update, in absolute indices.

    Raises:
        DataError: the arrays are not 1-D, differ in length or are not finite.
    """
    err = as_series(errors, "errors")
    vals = as_series(values, "values")
    if err.size != vals.size:
        raise DataError(f"errors and values differ in length: {err.size} != {vals.size}")
    if err.size == 0:
        return state, []
    config = state.config
    h = config.batch_size * config.window_size
    new_smoothed, carry = ewma(np.abs(err), ewma_span(config), state.carry)
    offset = state.seen - state.smoothed.size  # absolute index of buffer position 0
    smoothed = np.concatenate([state.smoothed, new_smoothed])
    buffered_values = np.concatenate([state.values, vals])
    flagged = np.concatenate([state.flagged, np.zeros(err.size, dtype=bool)])
    scores = np.full(smoothed.size, -np.inf, dtype=np.float32)
    seen = state.seen + err.size
    before, after = state.judged, judged_frontier(seen, config)
    for end in range(max(before + config.batch_size, h), after + 1, config.batch_size):
        if end == h:
            smoothed = apply_warmup(smoothed, config.warmup)  # offset is 0: the series start is here
        lo, hi = end - h - offset, end - offset
        new = max(0 if end == h else h - config.batch_size, min(config.ignore_first - (end - h), h))
        result = evaluate_window(smoothed[lo:hi], buffered_values[lo:hi], flagged[lo:hi], new, config)
        flagged[lo + new : hi] = result.flagged[new:]
        scores[lo + new : hi] = result.scores[new:]
    finished, open_start, open_score = _close_sequences(
        state, flagged[before - offset : after - offset], scores[before - offset : after - offset], before, after
    )
    keep = _buffer_start(after, config) - offset
    next_state = StreamState(
        config=config,
        seen=seen,
        carry=carry,
        smoothed=smoothed[keep:].copy(),
        values=buffered_values[keep:].copy(),
        flagged=flagged[keep:].copy(),
        open_start=open_start,
        open_score=open_score,
    )
    return next_state, finished


def _close_sequences(
    state: StreamState,
    flagged: npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float32],
    before: int,
    after: int,
) -> tuple[list[AnomalySequence], int, float]:
    """Sequences of the newly judged points ``[before, after)`` joined to the open one.

    Returns the finished sequences and the new open sequence's start and score.
    """
    if after == before:
        return [], state.open_start, state.open_score
    runs = runs_to_sequences(flagged, scores, offset=before)
    finished: list[AnomalySequence] = []
    if state.open_start != NO_SEQUENCE:
        if runs and runs[0].start == before:
            first = runs.pop(0)
            runs.insert(0, AnomalySequence(state.open_start, first.end, max(state.open_score, first.score)))
        else:
            finished.append(AnomalySequence(state.open_start, before - 1, state.open_score))
    if runs and runs[-1].end == after - 1:
        last = runs.pop()
        return finished + runs, last.start, last.score
    return finished + runs, NO_SEQUENCE, float("-inf")


def state_to_arrays(state: StreamState) -> dict[str, npt.NDArray]:
    """The state as named npy-compatible arrays (no pickling): save with ``np.savez``.

    Scalars are 0-d arrays; the config is a 0-d unicode array holding its JSON.
    """
    return {
        "config": np.array(state.config.model_dump_json()),
        "seen": np.array(state.seen, dtype=np.int64),
        "ewma_numerator": np.array(state.carry.numerator, dtype=np.float64),
        "ewma_count": np.array(state.carry.count, dtype=np.int64),
        "smoothed": state.smoothed,
        "values": state.values,
        "flagged": state.flagged,
        "open_start": np.array(state.open_start, dtype=np.int64),
        "open_score": np.array(state.open_score, dtype=np.float64),
    }


STATE_KEYS = frozenset(
    ("config", "seen", "ewma_numerator", "ewma_count", "smoothed", "values", "flagged", "open_start", "open_score")
)


def state_from_arrays(arrays: dict[str, npt.ArrayLike]) -> StreamState:
    """Rebuild a state from ``state_to_arrays`` output (e.g. an ``np.load``-ed npz).

    Raises:
        DataError: a key is missing or unknown, the config is invalid, or the buffers do not
            have the length the point count implies.
    """
    keys = set(arrays)
    if keys != STATE_KEYS:
        raise DataError(f"stream state keys: missing {sorted(STATE_KEYS - keys)}, unknown {sorted(keys - STATE_KEYS)}")
    try:
        config = ThresholdSettings.model_validate(json.loads(str(np.asarray(arrays["config"]))))
    except (ValidationError, json.JSONDecodeError) as exc:
        raise DataError(f"stream state: invalid config: {exc}") from None
    seen = int(np.asarray(arrays["seen"]))
    buffers = {name: np.asarray(arrays[name]) for name in ("smoothed", "values", "flagged")}
    expected = seen - _buffer_start(judged_frontier(seen, config), config)
    for name, arr in buffers.items():
        if arr.ndim != 1 or arr.size != expected:
            raise DataError(f"stream state: {name} has shape {arr.shape}, expected ({expected},) after {seen} points")
    count = int(np.asarray(arrays["ewma_count"]))
    if count != seen:
        raise DataError(f"stream state: ewma_count {count} != seen {seen}")
    return StreamState(
        config=config,
        seen=seen,
        carry=EwmaCarry(numerator=float(np.asarray(arrays["ewma_numerator"])), count=count),
        smoothed=buffers["smoothed"].astype(np.float32),
        values=buffers["values"].astype(np.float32),
        flagged=buffers["flagged"].astype(bool),
        open_start=int(np.asarray(arrays["open_start"])),
        open_score=float(np.asarray(arrays["open_score"])),
    )
