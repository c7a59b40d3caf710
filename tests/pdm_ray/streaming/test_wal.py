import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdm_ray.errors import WalCorruptionError, WalWriteError
from pdm_ray.streaming import wal as wal_module
from pdm_ray.streaming.batch import Batch
from pdm_ray.streaming.wal import SEGMENT_MAGIC, RecordKind, WriteAheadLog


def _batch(seq: int, n: int = 3, width: int = 2) -> Batch:
    ts = np.arange(seq * 10, seq * 10 + n, dtype=np.float64)
    values = (np.arange(n * width, dtype=np.float32).reshape(n, width) + seq).astype(np.float32)
    return Batch(seq, ts, values)


def _fresh(path: Path) -> WriteAheadLog:
    wal = WriteAheadLog(path)
    assert wal.recover() == []
    return wal


def test_records_come_back_in_order(tmp_path: Path) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    wal.append_predictions(0, np.array([0.5, 1.5], np.float32))
    wal.append_batch(_batch(1, n=1, width=3))
    wal.close()
    records = WriteAheadLog(tmp_path).recover()
    assert [(r.kind, r.seq) for r in records] == [
        (RecordKind.DATA, 0),
        (RecordKind.PREDICTIONS, 0),
        (RecordKind.DATA, 1),
    ]
    np.testing.assert_array_equal(records[0].values, _batch(0).values)
    np.testing.assert_array_equal(records[0].timestamps, _batch(0).timestamps)
    assert records[1].values.tolist() == [0.5, 1.5]
    assert records[2].batch().values.shape == (1, 3)


def test_record_layout_is_the_documented_one(tmp_path: Path) -> None:
    wal = _fresh(tmp_path)
    written = wal.append_batch(_batch(7, n=1, width=1))
    data = wal.segments()[0].read_bytes()
    assert wal.segments()[0].name == "00000000000000000007.wal"
    assert data[:8] == SEGMENT_MAGIC
    length, crc = struct.unpack_from("<II", data, 8)
    payload = data[16:]
    assert length == len(payload) == 1 + 8 + 4 + 4 + 8 + 4
    assert written == 8 + length
    assert zlib.crc32(payload) == crc
    assert struct.unpack_from("<BqII", payload) == (1, 7, 1, 1)
    assert struct.unpack_from("<df", payload, 17) == (70.0, 7.0)


def test_a_torn_last_record_is_truncated_and_the_log_stays_usable(tmp_path: Path) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    good_size = wal.size_bytes()
    wal.append_batch(_batch(1))
    wal.close()
    segment = wal.segments()[0]
    segment.write_bytes(segment.read_bytes()[:-5])  # crash mid-write
    wal = WriteAheadLog(tmp_path)
    assert [r.seq for r in wal.recover()] == [0]
    assert segment.stat().st_size == good_size
    wal.append_batch(_batch(2))
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [0, 2]


def test_a_checksum_mismatch_in_the_last_record_is_truncated(tmp_path: Path) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    wal.append_batch(_batch(1))
    wal.close()
    segment = wal.segments()[0]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [0]


@pytest.mark.parametrize("chunk", [1 << 20, 7])  # the scan for a later record, in one chunk or many
def test_damage_followed_by_a_valid_record_is_corruption_not_a_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(wal_module, "_SCAN_CHUNK", chunk)
    wal = _fresh(tmp_path)
    for seq in range(4):
        wal.append_batch(_batch(seq))
    wal.close()
    segment = wal.segments()[0]
    data = bytearray(segment.read_bytes())
    data[8 + 8 + 40] ^= 0xFF  # inside record 0's body; records 1-3 are intact and were acked
    segment.write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError, match="followed by a valid record"):
        WriteAheadLog(tmp_path).recover()
    assert segment.read_bytes() == bytes(data)  # nothing was truncated away


def _fail_once(monkeypatch: pytest.MonkeyPatch, name: str, failing: object) -> None:
    """Make ``os.<name>`` as the WAL module sees it behave as ``failing`` for one call (a disk fault)."""
    real = getattr(wal_module.os, name)

    def once(*args: object) -> object:
        monkeypatch.setattr(wal_module.os, name, real)
        return failing(real, *args)  # type: ignore[operator]

    monkeypatch.setattr(wal_module.os, name, once)


def test_a_short_write_is_cut_off_so_later_records_survive_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    size = wal.size_bytes()

    def half(real: object, fd: int, parts: list[bytes]) -> int:  # the disk fills up half-way
        blob = b"".join(bytes(p) for p in parts)
        return os.write(fd, blob[: len(blob) // 2])

    _fail_once(monkeypatch, "writev", half)
    with pytest.raises(WalWriteError, match="could not log batch 1: short write"):
        wal.append_batch(_batch(1))
    assert wal.size_bytes() == size
    for seq in (1, 2, 3):  # the producer resends, then goes on
        wal.append_batch(_batch(seq))
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [0, 1, 2, 3]


def _eio(real: object, *args: object) -> None:
    raise OSError(5, "Input/output error")


def _append_whose_cut_fails(wal: WriteAheadLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch 0 logged, then batch 1's sync fails and so does cutting it off."""
    wal.append_batch(_batch(0))
    _fail_once(monkeypatch, "fdatasync", _eio)
    _fail_once(monkeypatch, "ftruncate", _eio)
    with pytest.raises(WalWriteError):
        wal.append_batch(_batch(1))


def test_a_failed_sync_is_cut_off_so_the_resent_batch_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    _fail_once(monkeypatch, "fdatasync", _eio)
    with pytest.raises(WalWriteError, match="Input/output error"):
        wal.append_batch(_batch(1))
    wal.append_batch(_batch(1))
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [0, 1]


def test_a_cut_that_failed_is_made_before_the_next_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = _fresh(tmp_path)
    _append_whose_cut_fails(wal, monkeypatch)
    _fail_once(monkeypatch, "ftruncate", _eio)
    with pytest.raises(WalWriteError):  # still cannot cut: nothing new is written behind the failed record
        wal.append_batch(_batch(1))
    wal.append_batch(_batch(1))
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [0, 1]


def test_a_pending_cut_does_not_outlive_a_rotate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = _fresh(tmp_path)
    _append_whose_cut_fails(wal, monkeypatch)
    wal.rotate()  # a snapshot covers batch 0 and the failed 1 was never accepted
    wal.append_batch(_batch(1))
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [1]


def test_a_segment_whose_header_failed_is_not_left_for_the_resend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = _fresh(tmp_path)

    def full(real: object, fd: int, data: bytes) -> int:  # the disk is full at the header
        raise OSError(28, "No space left on device")

    _fail_once(monkeypatch, "write", full)
    with pytest.raises(WalWriteError, match="No space left"):
        wal.append_batch(_batch(0))
    assert wal.segments() == []
    wal.append_batch(_batch(0))  # the resend
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [0]


def test_damage_in_an_older_segment_is_corruption(tmp_path: Path) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    wal.append_batch(_batch(1))
    wal.close()
    old = wal.segments()[0]
    old.rename(tmp_path / "00000000000000000000.wal")
    data = bytearray(old.with_name("00000000000000000000.wal").read_bytes())
    data[20] ^= 0xFF
    (tmp_path / "00000000000000000000.wal").write_bytes(bytes(data))
    newer = WriteAheadLog(tmp_path / "n")
    newer.recover()
    newer.append_batch(_batch(5))
    newer.close()
    newer.segments()[0].rename(tmp_path / newer.segments()[0].name)
    with pytest.raises(WalCorruptionError, match="not the newest"):
        WriteAheadLog(tmp_path).recover()


def test_a_foreign_file_is_corruption(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000000.wal").write_bytes(b"something else entirely")
    with pytest.raises(WalCorruptionError, match="bad header"):
        WriteAheadLog(tmp_path).recover()


def test_a_segment_torn_inside_its_header_is_removed(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000004.wal").write_bytes(SEGMENT_MAGIC[:3])
    wal = WriteAheadLog(tmp_path)
    assert wal.recover() == []
    assert wal.segments() == []


def test_rotate_drops_the_logged_records(tmp_path: Path) -> None:
    wal = _fresh(tmp_path)
    wal.append_batch(_batch(0))
    wal.rotate()
    assert wal.segments() == []
    wal.append_batch(_batch(1))
    assert [p.name for p in wal.segments()] == ["00000000000000000001.wal"]
    wal.close()
    assert [r.seq for r in WriteAheadLog(tmp_path).recover()] == [1]


def test_appending_before_recovery_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WalCorruptionError, match="recover"):
        WriteAheadLog(tmp_path).append_batch(_batch(0))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(cut=st.integers(0, 400))
def test_any_truncation_recovers_exactly_the_complete_records(tmp_path: Path, cut: int) -> None:
    directory = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: hypothesis reuses tmp_path
    wal = _fresh(directory)
    ends = []
    for seq in range(4):
        wal.append_batch(_batch(seq, n=seq + 1))
        ends.append(wal.size_bytes())
    wal.close()
    segment = wal.segments()[0]
    data = segment.read_bytes()
    keep = min(cut, len(data))
    segment.write_bytes(data[:keep])
    records = WriteAheadLog(directory).recover()
    assert [r.seq for r in records] == [seq for seq, end in enumerate(ends) if end <= keep]
    for r in records:
        np.testing.assert_array_equal(r.values, _batch(r.seq, n=r.seq + 1).values)
