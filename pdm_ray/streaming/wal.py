"""A per-sensor write-ahead log of accepted batches (and of the predictions they were scored with).

Format (little-endian), one directory of segment files ``<first seq, 20 digits>.wal``:

* segment header: 8 bytes, ``b"PDMWAL"`` + format version ``u16`` (1);
* then records, each ``length u32 | crc32 u32 | payload[length]``, where the CRC-32
  (``zlib.crc32``) covers the payload and the payload is
  ``kind u8 | seq i64 | n u32 | f u32 | body``:

  - ``kind 1`` (DATA, an accepted batch): ``timestamps f64[n] | values f32[n*f]`` (row-major);
  - ``kind 2`` (PREDICTIONS for the newest ``n`` readings of batch ``seq``): ``f32[n]``, ``f = 0``.

DATA records are flushed with ``fdatasync`` before ``append_batch`` returns, so an acked
batch survives a crash of the process or the machine. PREDICTIONS records are written
without a sync of their own (the next DATA record's sync covers them): losing the last
one only means recovery asks the forecaster again.

An append that fails (disk full, I/O error, a failed ``fdatasync``) is cut off the segment
again before the error is raised (``WalWriteError``), and if even that fails, before the
next append writes anything; so a record the caller was told failed never sits in front of
later ones. (Should the process die while such a cut is pending, a complete failed record
can come back on recovery; the caller's resend of it is then acked as a duplicate.)

Recovery reads every segment in order. A record cut short or failing its checksum at the
end of the newest segment is a torn write from a crash: it and anything after it are
truncated away. Damage followed by a valid record, or in an older segment, is real
corruption (``WalCorruptionError``): truncating there would drop batches that were acked.

After a snapshot covering everything logged so far, ``rotate`` starts a new segment and
deletes the old ones, so the log holds at most the batches since the last snapshot.
"""

from __future__ import annotations

import enum
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import WalCorruptionError, WalWriteError
from pdm_ray.streaming.batch import Batch

logger = logging.getLogger(__name__)

SEGMENT_MAGIC = b"PDMWAL" + struct.pack("<H", 1)
_FRAME = struct.Struct("<II")  # length, crc32
_PAYLOAD_HEAD = struct.Struct("<BqII")  # kind, seq, n, f
_SUFFIX = ".wal"


class RecordKind(enum.IntEnum):
    """What a WAL record holds."""

    DATA = 1
    PREDICTIONS = 2


@dataclass(frozen=True)
class WalRecord:
    """One decoded record.

    Attributes:
        kind: DATA or PREDICTIONS.
        seq: the batch's sequence number.
        timestamps: float64 ``[n]`` for DATA; empty for PREDICTIONS.
        values: float32 ``[n, F]`` for DATA; the predictions ``[n]`` for PREDICTIONS.
    """

    kind: RecordKind
    seq: int
    timestamps: npt.NDArray[np.float64] = field(repr=False)
    values: npt.NDArray[np.float32] = field(repr=False)

    def batch(self) -> Batch:
        """The DATA record as the batch it logged."""
        return Batch(self.seq, self.timestamps, self.values)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new, renamed or deleted files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """Append-only, checksummed log in ``directory``; call ``recover`` once before appending.

    Args:
        directory: the log's own directory (created on the first append).
        sync: ``fdatasync`` DATA records before returning (turn off only for throwaway data).
    """

    def __init__(self, directory: str | Path, sync: bool = True) -> None:
        self.directory = Path(directory)
        self.sync = sync
        self._fd: int | None = None
        self._recovered = False
        self._cut_at: int | None = None  # where a failed append must be cut off before the next one

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        return sorted(self.directory.glob(f"*{_SUFFIX}"))

    def size_bytes(self) -> int:
        """Bytes on disk over all segments."""
        return sum(p.stat().st_size for p in self.segments())

    def recover(self, repair: bool = True) -> list[WalRecord]:
        """Read every record in log order, truncating a torn tail of the newest segment.

        Args:
            repair: truncate a torn tail (and allow appends afterwards); False only reads,
                for looking at a log that a live process may still be writing.

        Returns:
            The records, oldest first (at most the batches since the last snapshot).

        Raises:
            WalCorruptionError: a segment has a bad header, or an older segment is damaged.
        """
        records: list[WalRecord] = []
        segments = self.segments()
        for i, path in enumerate(segments):
            newest = i == len(segments) - 1
            data = path.read_bytes()  # read once: a live writer may append meanwhile (repair=False)
            good_end, seg_records, reason = _read_segment(path, data)
            records.extend(seg_records)
            size = len(data)
            if reason is None:
                continue
            if not newest:
                raise WalCorruptionError(f"{path}: {reason} at byte {good_end} in a segment that is not the newest")
            later = _next_valid_record(data, good_end)
            if later is not None:
                raise WalCorruptionError(
                    f"{path}: {reason} at byte {good_end}, followed by a valid record at byte {later}"
                )
            if not repair:
                continue
            if good_end < len(SEGMENT_MAGIC):
                logger.warning("%s: removing a segment torn before its header was complete", path)
                path.unlink()
            else:
                logger.warning("%s: %s at byte %d; truncating %d torn bytes", path, reason, good_end, size - good_end)
                with path.open("r+b") as fh:
                    fh.truncate(good_end)
                    fh.flush()
                    os.fsync(fh.fileno())
            fsync_dir(self.directory)
        self._recovered = repair
        return records

    def append_batch(self, batch: Batch) -> int:
        """Log an accepted batch durably (written and fdatasync'd). Returns the bytes written."""
        ts = np.ascontiguousarray(batch.timestamps, dtype="<f8")
        values = np.ascontiguousarray(batch.values, dtype="<f4")
        head = _PAYLOAD_HEAD.pack(RecordKind.DATA, batch.seq, len(batch), batch.n_features)
        return self._append(batch.seq, [head, memoryview(ts).cast("B"), memoryview(values).cast("B")], self.sync)

    def append_predictions(self, seq: int, predictions: npt.NDArray[np.float32]) -> int:
        """Log the predictions batch ``seq`` was scored with (written, not synced). Returns bytes written."""
        preds = np.ascontiguousarray(predictions, dtype="<f4").reshape(-1)
        head = _PAYLOAD_HEAD.pack(RecordKind.PREDICTIONS, seq, preds.shape[0], 0)
        return self._append(seq, [head, memoryview(preds).cast("B")], False)

    def rotate(self) -> None:
        """Delete every segment: call right after a durable snapshot covering all logged records.

        The next append starts a fresh segment named after its sequence number.
        """
        self.close()
        self._cut_at = None  # the segment it pointed into is deleted
        segments = self.segments()
        for path in segments:
            path.unlink()
        if segments:
            fsync_dir(self.directory)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, seq: int, parts: list[bytes | memoryview], sync: bool) -> int:
        if not self._recovered:
            raise WalCorruptionError(f"{self.directory}: recover() must run before appending")
        crc = 0
        length = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
            length += len(part)
        frame = _FRAME.pack(length, crc)
        total = len(frame) + length
        try:
            fd = self._open_segment(seq)
            self._cut_failed_append(fd)
            start = os.fstat(fd).st_size
        except OSError as exc:
            raise self._write_error(seq, exc) from exc
        try:
            written = os.writev(fd, [frame, *parts])
            if written != total:
                raise OSError(f"short write ({written} of {total} bytes)")
            if sync:
                os.fdatasync(fd)
        except OSError as exc:
            self._cut_at = start
            try:
                self._cut_failed_append(fd)
            except OSError:
                logger.warning("%s: could not cut a failed append off yet; the next append will", self.directory)
            raise self._write_error(seq, exc) from exc
        return total

    def _write_error(self, seq: int, exc: OSError) -> WalWriteError:
        return WalWriteError(f"{self.directory}: could not log batch {seq}: {exc}; it was not accepted, resend it")

    def _cut_failed_append(self, fd: int) -> None:
        """Truncate the segment back to where a failed append began, durably."""
        if self._cut_at is None:
            return
        if os.fstat(fd).st_size > self._cut_at:  # never lengthen a file
            os.ftruncate(fd, self._cut_at)
        os.fsync(fd)
        self._cut_at = None

    def _open_segment(self, seq: int) -> int:
        if self._fd is not None:
            return self._fd
        segments = self.segments()
        if segments:
            fd = os.open(segments[-1], os.O_WRONLY | os.O_APPEND)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{seq:020d}{_SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                if os.write(fd, SEGMENT_MAGIC) != len(SEGMENT_MAGIC):
                    raise OSError("short write of the segment header")
                os.fsync(fd)
                fsync_dir(self.directory)
            except OSError:  # no headerless segment may stay behind for the resend to append to
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
        self._fd = fd
        return fd


def _read_segment(path: Path, data: bytes) -> tuple[int, list[WalRecord], str | None]:
    """Decode one segment's bytes: (offset after the last good record, records, why reading stopped or None)."""
    if len(data) < len(SEGMENT_MAGIC):
        return 0, [], "incomplete segment header"
    if data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
        raise WalCorruptionError(f"{path}: not a pdm-ray WAL segment (bad header {data[:8]!r})")
    view = memoryview(data)
    pos = len(SEGMENT_MAGIC)
    records: list[WalRecord] = []
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            return pos, records, "record header cut short"
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        if start + length > len(data):
            return pos, records, "record cut short"
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            return pos, records, "record checksum mismatch"
        record = _decode(payload)
        if record is None:
            return pos, records, "record with an invalid layout"
        records.append(record)
        pos = start + length
    return pos, records, None


_SCAN_CHUNK = 1 << 20


def _next_valid_record(data: bytes, after: int) -> int | None:
    """Offset of the first complete, checksummed record starting past ``after``, or None.

    Tells a torn tail (nothing valid after the damage) from damage in the middle of a log.
    Candidate offsets are filtered in numpy first (a length that fits and a known kind byte),
    so only a few checksums are computed; the scan runs in 1 MiB chunks, so its memory stays
    small whatever the segment's size.
    """
    stop = len(data) - _FRAME.size - _PAYLOAD_HEAD.size + 1  # last offset a record could start at, + 1
    view = memoryview(data)
    for lo in range(after + 1, stop, _SCAN_CHUNK):
        hi = min(lo + _SCAN_CHUNK, stop)
        raw = np.frombuffer(view[lo : hi + _FRAME.size], dtype=np.uint8)  # room for each offset's frame and kind
        n = hi - lo
        length = (
            raw[:n].astype(np.int64)
            | raw[1 : n + 1].astype(np.int64) << 8
            | raw[2 : n + 2].astype(np.int64) << 16
            | raw[3 : n + 3].astype(np.int64) << 24
        )
        kinds = raw[_FRAME.size : n + _FRAME.size]
        offsets = np.arange(lo, hi)
        fits = (length >= _PAYLOAD_HEAD.size) & (offsets + _FRAME.size + length <= len(data))
        for pos in offsets[fits & ((kinds == RecordKind.DATA) | (kinds == RecordKind.PREDICTIONS))].tolist():
            length_, crc = _FRAME.unpack_from(data, pos)
            payload = view[pos + _FRAME.size : pos + _FRAME.size + length_]
            if zlib.crc32(payload) == crc and _decode(payload) is not None:
                return pos
    return None


def _decode(payload: memoryview) -> WalRecord | None:
    if len(payload) < _PAYLOAD_HEAD.size:
        return None
    kind, seq, n, f = _PAYLOAD_HEAD.unpack_from(payload, 0)
    body = payload[_PAYLOAD_HEAD.size :]
    if kind == RecordKind.DATA and len(body) == 8 * n + 4 * n * f and f > 0:
        ts = np.frombuffer(body[: 8 * n], dtype="<f8").astype(np.float64)
        values = np.frombuffer(body[8 * n :], dtype="<f4").astype(np.float32).reshape(n, f)
        return WalRecord(RecordKind.DATA, seq, ts, values)
    if kind == RecordKind.PREDICTIONS and len(body) == 4 * n and f == 0:
        preds = np.frombuffer(body, dtype="<f4").astype(np.float32)
        return WalRecord(RecordKind.PREDICTIONS, seq, np.zeros(0, dtype=np.float64), preds)
    return None
