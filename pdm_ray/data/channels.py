"""Load channels stored in the Telemanom layout (Hundman et al. 2018).

``DIR/train/<id>.npy`` and ``DIR/test/<id>.npy`` hold float arrays of shape
``[time, features]`` (column 0 = telemetry, the rest = one-hot command flags);
``DIR/labeled_anomalies.csv`` holds ``chan_id, spacecraft, anomaly_sequences, class,
num_values`` with inclusive ``[start, end]`` test-index pairs. Any directory in that
layout works; the label file is optional.
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import DataError
from pdm_ray.ids import validate_sensor_id

LABEL_FILE = "labeled_anomalies.csv"
LABEL_COLUMNS = ("chan_id", "spacecraft", "anomaly_sequences", "class", "num_values")


@dataclass(frozen=True)
class ChannelLabels:
    """Labels of one channel: inclusive test-index intervals and their classes."""

    spacecraft: str
    intervals: tuple[tuple[int, int], ...]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Channel:
    """One channel's series.

    Attributes:
        id: channel id (e.g. ``"A-1"``).
        spacecraft: spacecraft name from the label file, or ``""`` without labels.
        train: float32 ``[time, features]``.
        test: float32 ``[time, features]``.
        anomalies: labelled inclusive ``(start, end)`` intervals in test indices.
        classes: class of each labelled interval (``point`` / ``contextual``).
    """

    id: str
    spacecraft: str
    train: npt.NDArray[np.float32] = field(repr=False)
    test: npt.NDArray[np.float32] = field(repr=False)
    anomalies: tuple[tuple[int, int], ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        return int(self.train.shape[1])

    @property
    def has_labels(self) -> bool:
        return bool(self.spacecraft)


def _parse_list(text: str, path: Path, line: int, column: str) -> list:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if column == "class" and value is None:
        # The published file writes classes unquoted: "[point, contextual]".
        stripped = text.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            value = [p.strip().strip("'\"") for p in stripped[1:-1].split(",") if p.strip()]
    if not isinstance(value, list):
        raise DataError(f"{path}: line {line}: malformed {column!r}: {text!r} is not a list")
    return value


def load_labels(data_dir: str | Path) -> dict[str, ChannelLabels]:
    """Read ``labeled_anomalies.csv``; rows of the same channel are merged (P-2 appears twice).

    Returns an empty dict when the directory has no label file.

    Raises:
        DataError: a row is malformed (wrong column count, unparsable sequences, classes
            that do not match the sequences, ``end < start``).
    """
    path = Path(data_dir) / LABEL_FILE
    if not path.exists():
        return {}
    merged: dict[str, ChannelLabels] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:5]) != LABEL_COLUMNS:
            raise DataError(f"{path}: header must start with {','.join(LABEL_COLUMNS)}, got {header}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 5:
                raise DataError(f"{path}: line {line}: expected 5 columns, got {len(row)}")
            chan_id, spacecraft = row[0].strip(), row[1].strip()
            validate_sensor_id(chan_id)
            seqs = _parse_list(row[2], path, line, "anomaly_sequences")
            classes = _parse_list(row[3], path, line, "class")
            intervals: list[tuple[int, int]] = []
            for seq in seqs:
                if (
                    not isinstance(seq, (list, tuple))
                    or len(seq) != 2
                    or not all(isinstance(v, int) for v in seq)
                    or seq[1] < seq[0]
                    or seq[0] < 0
                ):
                    raise DataError(f"{path}: line {line}: malformed sequence {seq!r} for {chan_id}")
                intervals.append((int(seq[0]), int(seq[1])))
            if len(classes) != len(intervals):
                raise DataError(
                    f"{path}: line {line}: {len(intervals)} sequences but {len(classes)} classes for {chan_id}"
                )
            prev = merged.get(chan_id)
            if prev is not None:
                intervals = list(prev.intervals) + intervals
                classes = list(prev.classes) + classes
            order = sorted(range(len(intervals)), key=lambda i: intervals[i])
            merged[chan_id] = ChannelLabels(
                spacecraft=spacecraft,
                intervals=tuple(intervals[i] for i in order),
                classes=tuple(str(classes[i]) for i in order),
            )
    return merged


def _load_array(path: Path, allow_missing: bool = False) -> npt.NDArray[np.float32]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array: {exc}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: expected a non-empty [time, features] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected numeric values, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any() and not allow_missing:
        first = int(np.argwhere(bad)[0][0])
        raise DataError(
            f"{path}: {int(bad.sum())} non-finite values, first at time index {first} "
            "('pdm-ray data prepare' imputes gaps)"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def list_channels(data_dir: str | Path) -> list[str]:
    """Ids of the channels that have a train array in ``data_dir`` (sorted)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    if not (root / "train").is_dir():
        raise DataError(f"{root}: missing 'train' directory (expected the Telemanom layout)")
    return sorted(p.stem for p in (root / "train").glob("*.npy"))


def load_channel(
    data_dir: str | Path,
    chan_id: str,
    labels: dict[str, ChannelLabels] | None = None,
    allow_missing: bool = False,
) -> Channel:
    """Load one channel.

    Args:
        data_dir: a directory in the Telemanom layout.
        chan_id: the channel id.
        labels: pre-read labels (from ``load_labels``); read from the directory when None.
        allow_missing: keep NaN/inf values, for callers that check quality and impute
            (``pdm_ray.data.pipeline``: preparing, training, the promotion gate); the rest
            read series that must be complete.

    Raises:
        InvalidChannelError: the id does not match the sensor-id pattern.
        DataError: a missing directory or file, a train/test feature mismatch, non-finite
            values (unless ``allow_missing``), or a label interval outside the test series.
    """
    validate_sensor_id(chan_id)
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    train = _load_array(root / "train" / f"{chan_id}.npy", allow_missing)
    test = _load_array(root / "test" / f"{chan_id}.npy", allow_missing)
    if train.shape[1] != test.shape[1]:
        raise DataError(f"{root}: channel {chan_id}: train has {train.shape[1]} features but test has {test.shape[1]}")
    labels = load_labels(root) if labels is None else labels
    lab = labels.get(chan_id)
    if lab is None:
        return Channel(chan_id, "", train, test)
    for start, end in lab.intervals:
        if end >= len(test):
            raise DataError(
                f"{root / LABEL_FILE}: channel {chan_id}: label interval [{start}, {end}] "
                f"is outside the test series of length {len(test)}"
            )
    return Channel(chan_id, lab.spacecraft, train, test, lab.intervals, lab.classes)


def load_channels(
    data_dir: str | Path, channels: list[str] | None = None, allow_missing: bool = False
) -> list[Channel]:
    """Load several channels (all in the directory when ``channels`` is None); see ``load_channel``."""
    ids = list_channels(data_dir) if channels is None else channels
    labels = load_labels(data_dir)
    return [load_channel(data_dir, cid, labels, allow_missing) for cid in ids]


def largest_first(sizes: Mapping[str, int]) -> list[str]:
    """Channels by training data size, largest first (ties keep their order).

    The order in which a sweep's grid and the benchmark's tasks run: the longest trainings start
    early and short ones end the run, instead of one long training running alone at the end
    (longest-processing-time first; BENCHMARKS.md, "Parallel sweep efficiency").
    """
    return sorted(sizes, key=lambda c: -sizes[c])


def train_sizes(data_dir: str | Path, chan_ids: list[str]) -> dict[str, int]:
    """Number of values in each channel's train array, read from the .npy headers (no data loaded)."""
    root = Path(data_dir)
    sizes = {}
    for chan_id in chan_ids:
        path = root / "train" / f"{chan_id}.npy"
        try:
            sizes[chan_id] = int(np.load(path, mmap_mode="r", allow_pickle=False).size)
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable .npy array: {exc}") from exc
    return sizes
