"""``DriftMonitor``: a fixed reference window against a sliding current window, for streams.

The current window is a ring buffer of the last ``current_size`` points. Alongside it the
monitor keeps the window's counts on the reference's quantile bins, updated incrementally:
each new point adds one to its bin and each evicted point subtracts one from its, so an
update costs ``O(1)`` per point (vectorized over a batch with ``bincount``). ``check`` runs
the tests on demand: the bin tests read the counts, KS / Mann–Whitney / Wasserstein sort the
raw window held by the ring buffer (``O(w log w)`` per check, not per point).

State is data: ``to_state`` gives arrays and JSON scalars (npy/JSON-storable) and
``from_state`` rebuilds an identical monitor; the bin counts are re-derived from the
window, so a snapshot cannot hold counts that disagree with it.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from pdm_ray.config import DriftSettings
from pdm_ray.drift.detectors import make_tests, run_tests
from pdm_ray.drift.results import DriftReport
from pdm_ray.drift.samples import Reference, as_sample, bin_index, pair
from pdm_ray.errors import DataError, InsufficientDataError

logger = logging.getLogger(__name__)

STATE_VERSION = 1
_STATE_KEYS = frozenset({"version", "reference", "window", "position", "filled", "n_seen", "current_size"})


class DriftMonitor:
    """Stream drift monitor: ``update`` with batches, ``check`` when a verdict is wanted.

    Args:
        cfg: drift settings; ``cfg.current_size`` is the sliding window length ``w``.
        reference: ``[n]`` reference values (e.g. the training series of channel 0).

    Raises:
        DataError: ``reference`` is not a finite 1-D numeric sample.
        InsufficientDataError: it has fewer than ``cfg.min_samples`` values.
    """

    def __init__(self, cfg: DriftSettings, reference: npt.ArrayLike) -> None:
        self.cfg = cfg
        self._tests = make_tests(cfg)
        self._reference = Reference.from_values(reference, cfg.n_bins, cfg.min_samples)
        self._window = np.zeros(cfg.current_size, dtype=np.float32)
        self._position = 0
        self._filled = 0
        self._n_seen = 0
        self._counts = np.zeros(self._reference.counts.size, dtype=np.int64)

    @property
    def n_seen(self) -> int:
        """How many points were ever fed (the stream index of the next point)."""
        return self._n_seen

    @property
    def filled(self) -> int:
        """How many points the current window holds (at most ``current_size``)."""
        return self._filled

    @property
    def reference(self) -> Reference:
        """The prepared reference."""
        return self._reference

    def current(self) -> npt.NDArray[np.float32]:
        """The current window ``[filled]``, oldest point first."""
        if self._filled < self.cfg.current_size:
            return self._window[: self._filled].copy()
        return np.roll(self._window, -self._position)

    def current_counts(self) -> npt.NDArray[np.int64]:
        """The current window's counts on the reference bins ``[b]`` (a copy)."""
        return self._counts.copy()

    def update(self, values: npt.ArrayLike) -> None:
        """Append a batch ``[k]`` of points, evicting the oldest beyond ``current_size``.

        Raises:
            DataError: ``values`` is not a finite 1-D numeric batch (the monitor is unchanged).
        """
        batch = as_sample(values, "drift monitor batch", 0)
        k = batch.size
        if k == 0:
            return
        size = self.cfg.current_size
        n_bins = self._counts.size
        if k >= size:
            self._window[:] = batch[-size:]
            self._position = 0
            self._filled = size
            self._counts = np.bincount(bin_index(self._reference.edges, self._window), minlength=n_bins)
        else:
            slots = (self._position + np.arange(k)) % size
            evicted = self._window[slots[slots < self._filled]]  # slots not yet filled evict nothing
            self._counts -= np.bincount(bin_index(self._reference.edges, evicted), minlength=n_bins)
            self._counts += np.bincount(bin_index(self._reference.edges, batch), minlength=n_bins)
            self._window[slots] = batch
            self._position = (self._position + k) % size
            self._filled = min(size, self._filled + k)
        self._n_seen += k

    def check(self) -> DriftReport:
        """Run the configured tests on the reference and the current window.

        Raises:
            InsufficientDataError: the window holds fewer than ``cfg.min_samples`` points.
        """
        if self._filled < self.cfg.min_samples:
            raise InsufficientDataError(
                f"drift monitor window holds {self._filled} points; a check needs at least {self.cfg.min_samples}"
            )
        current_sorted = np.sort(self._window[: self._filled])
        report = run_tests(self._tests, pair(self._reference, current_sorted, self._counts))
        logger.debug("drift check at point %d: drift=%s severity=%s", self._n_seen, report.drift, report.severity.value)
        return report

    def reset_reference(self, reference: npt.ArrayLike) -> None:
        """Replace the reference (e.g. after retraining); the current window is kept and re-binned.

        Raises:
            DataError: ``reference`` is not a finite 1-D numeric sample (the monitor is unchanged).
            InsufficientDataError: it has fewer than ``cfg.min_samples`` values.
        """
        self._reference = Reference.from_values(reference, self.cfg.n_bins, self.cfg.min_samples)
        self._counts = self._recount()

    def _recount(self) -> npt.NDArray[np.int64]:
        bins = bin_index(self._reference.edges, self._window[: self._filled])
        return np.bincount(bins, minlength=self._reference.counts.size).astype(np.int64)

    def to_state(self) -> dict[str, npt.NDArray[np.float32] | int]:
        """The monitor as data: float32 arrays ``reference [n]`` (sorted) and ``window [w]``, plus ints."""
        return {
            "version": STATE_VERSION,
            "reference": self._reference.values.copy(),
            "window": self._window.copy(),
            "position": self._position,
            "filled": self._filled,
            "n_seen": self._n_seen,
            "current_size": self.cfg.current_size,
        }

    @classmethod
    def from_state(cls, cfg: DriftSettings, state: dict[str, object]) -> DriftMonitor:
        """Rebuild a monitor from ``to_state`` output under ``cfg``.

        A state saved with another ``current_size`` keeps its newest points that fit, so a
        config change does not make every sensor's saved state unreadable.

        Raises:
            DataError: a key is missing or unknown, the version differs, or a field has the
                wrong type, shape or range.
        """
        keys = set(state)
        if keys != _STATE_KEYS:
            raise DataError(
                f"drift monitor state keys differ: missing {sorted(_STATE_KEYS - keys)}, "
                f"unknown {sorted(keys - _STATE_KEYS)}"
            )
        scalars = {
            name: _as_int(state[name], name) for name in ("version", "position", "filled", "n_seen", "current_size")
        }
        if scalars["version"] != STATE_VERSION:
            raise DataError(f"drift monitor state version {scalars['version']} is not {STATE_VERSION}")
        size = scalars["current_size"]
        window = np.asarray(state["window"])
        if size <= 0 or window.shape != (size,) or window.dtype != np.float32:
            raise DataError(
                f"drift monitor state window must be float32 of shape ({size},), got {window.dtype} {window.shape}"
            )
        filled, position = scalars["filled"], scalars["position"]
        if not 0 <= filled <= size or not 0 <= position < size or (filled < size and position != filled):
            raise DataError(
                f"drift monitor state has inconsistent filled={filled}, position={position} for size {size}"
            )
        if not np.isfinite(window[:filled] if filled < size else window).all():
            raise DataError("drift monitor state window has non-finite values")
        if scalars["n_seen"] < filled:
            raise DataError(f"drift monitor state has n_seen={scalars['n_seen']} < filled={filled}")
        monitor = cls(cfg, state["reference"])
        if size == cfg.current_size:
            monitor._window = window.copy()
            monitor._position = position
            monitor._filled = filled
            monitor._counts = monitor._recount()
        else:
            monitor.update(window[:filled] if filled < size else np.roll(window, -position))
            logger.info("drift monitor: current window re-sized from %d to %d points", size, cfg.current_size)
        monitor._n_seen = scalars["n_seen"]
        return monitor


def _as_int(value: object, name: str) -> int:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"drift monitor state field {name!r} must be an integer, got {value!r}")
    return int(value)
