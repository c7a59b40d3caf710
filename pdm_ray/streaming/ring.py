"""A bounded ring buffer of a sensor's most recent readings.

Writes are one or two slice copies per batch (no loop per reading); reads return
chronologically ordered copies. ``total`` counts every reading ever appended, so reading
``i`` of the sensor's life has absolute index ``i`` whether or not it is still buffered.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import DataError


class RingBuffer:
    """The last ``capacity`` readings: timestamps float64 ``[capacity]``, values float32 ``[capacity, F]``."""

    def __init__(self, capacity: int, n_features: int) -> None:
        if capacity <= 0 or n_features <= 0:
            raise DataError(f"ring buffer needs capacity > 0 and n_features > 0, got {capacity}, {n_features}")
        self.capacity = capacity
        self.n_features = n_features
        self._ts = np.zeros(capacity, dtype=np.float64)
        self._values = np.zeros((capacity, n_features), dtype=np.float32)
        self.total = 0  # readings ever appended; the next one gets this absolute index

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def extend(self, timestamps: npt.NDArray[np.float64], values: npt.NDArray[np.float32]) -> None:
        """Append ``n`` readings (``[n]`` and ``[n, F]``), dropping the oldest beyond capacity."""
        n = timestamps.shape[0]
        if values.shape != (n, self.n_features):
            raise DataError(f"ring buffer expects values of shape ({n}, {self.n_features}), got {values.shape}")
        keep = min(n, self.capacity)
        start = (self.total + n - keep) % self.capacity
        first = min(keep, self.capacity - start)
        self._ts[start : start + first] = timestamps[n - keep : n - keep + first]
        self._values[start : start + first] = values[n - keep : n - keep + first]
        if keep > first:
            self._ts[: keep - first] = timestamps[n - keep + first :]
            self._values[: keep - first] = values[n - keep + first :]
        self.total += n

    def last(self, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """The newest ``min(n, len(self))`` readings in time order: timestamps ``[m]``, values ``[m, F]``."""
        m = max(0, min(n, len(self)))
        idx = (np.arange(self.total - m, self.total) % self.capacity) if m else np.zeros(0, dtype=np.int64)
        return self._ts[idx], self._values[idx]

    def timestamps_at(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Timestamps of absolute reading indices ``[k]``; NaN where a reading is no longer buffered."""
        indices = np.asarray(indices, dtype=np.int64)
        held = (indices >= self.total - len(self)) & (indices < self.total)
        out = np.full(indices.shape, np.nan)
        out[held] = self._ts[indices[held] % self.capacity]
        return out

    def to_state(self) -> dict[str, object]:
        """Serializable state: the buffered readings in time order and the total count."""
        ts, values = self.last(len(self))
        return {"capacity": self.capacity, "total": self.total, "timestamps": ts, "values": values}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> RingBuffer:
        """Inverse of ``to_state``."""
        values = np.asarray(state["values"], dtype=np.float32)
        ring = cls(int(state["capacity"]), int(values.shape[1]))
        ring.total = int(state["total"]) - values.shape[0]
        ring.extend(np.asarray(state["timestamps"], dtype=np.float64), values)
        return ring

    def digest(self) -> str:
        """SHA-256 over the total count and the buffered readings in time order."""
        ts, values = self.last(len(self))
        h = hashlib.sha256(np.int64(self.total).tobytes())
        h.update(np.ascontiguousarray(ts).tobytes())
        h.update(np.ascontiguousarray(values).tobytes())
        return h.hexdigest()
