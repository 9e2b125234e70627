"""Log framing, torn-tail and garbled-record recovery, snapshot/log interplay."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from store_testlib import as_after_a_kill, batch, make_bank_config, open_store

from memnet.errors import FailedPrecondition
from memnet.store import MemoryStore
from memnet.store.logstate import STATE_FILE
from memnet.store.records import ClearRecord, DeleteRecord, WriteRecord
from memnet.store.types import FsyncPolicy
from memnet.store.wal import MAGIC, WriteAheadLog, log_files, read_log

D = 16


def _keys(seed: int, n: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def _fill(tmp_path: Path, batches: int, *, killed: bool = True) -> Path:
    """Write ``batches`` batches of 10 (ids b<j>-<i>), close without snapshot; returns the log.

    ``killed``: leave log-state.json as a killed process would (only the log's header known
    to be fsynced), so damage past it reads as a crash's torn tail."""
    store = open_store(tmp_path, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D))
    for j in range(batches):
        bank.write(batch(_keys(j), ids=[f"b{j}-{i}" for i in range(10)]))
    store.close()
    if killed:
        as_after_a_kill(tmp_path / "banks" / "b")
    (_, path), *_ = log_files(tmp_path / "banks" / "b")
    return path


def test_records_round_trip(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "x.log", policy=FsyncPolicy.ALWAYS, interval_ms=0)
    keys = _keys(1, 3)
    src = _keys(2, 3)[:, :5]
    w = WriteRecord(
        1, 123, ["a", "b", "c"], keys, keys[:, :4], src, ["t", None, "ü"], [{}, {"x": 1}, {}], []
    )
    wal.append(w)
    wal.append(DeleteRecord(4, 456, ["a"]))
    wal.append(ClearRecord(5, 789))
    wal.close()
    got = read_log(tmp_path / "x.log")
    assert got.reason == "" and got.bytes_cut == 0
    r0, r1, r2 = got.records
    assert (
        isinstance(r0, WriteRecord) and r0.ids == ["a", "b", "c"] and r0.texts == ["t", None, "ü"]
    )
    np.testing.assert_array_equal(r0.keys, keys)
    np.testing.assert_array_equal(r0.values, keys[:, :4])
    assert r0.sources is not None
    np.testing.assert_array_equal(r0.sources, src)
    assert r0.metadata == [{}, {"x": 1}, {}] and r0.last_seq == 3
    assert r1 == DeleteRecord(4, 456, ["a"]) and r2 == ClearRecord(5, 789)


def test_torn_tail_is_cut_and_reported(tmp_path: Path) -> None:
    path = _fill(tmp_path, 5)
    whole = read_log(path)
    last_start = whole.starts[-1]
    size = path.stat().st_size
    torn_at = last_start + (size - last_start) // 2  # half of the last record survived
    with open(path, "r+b") as f:
        f.truncate(torn_at)
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert report.bytes_cut == torn_at - last_start
    assert "torn" in report.reason
    assert report.records_replayed == 4
    bank = store.bank("b")
    assert bank.count() == 40 and bank.last_seq == 40
    assert bank.get(["b3-9", "b4-0"])[1] is None
    rec = bank.get(["b3-9"])[0]
    assert rec is not None
    np.testing.assert_array_equal(rec.key, _keys(3)[9])
    assert path.stat().st_size == last_start  # cut back to the last whole record
    bank.write(batch(_keys(9), ids=[f"c{i}" for i in range(10)]))  # writing after a cut works
    store.close()
    again = open_store(tmp_path)
    assert again.bank("b").count() == 50
    assert again.recovery_reports()["b"].bytes_cut == 0
    again.close()


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_garbled_record_followed_by_whole_ones_quarantines_the_bank(tmp_path: Path) -> None:
    path = _fill(tmp_path, 5)
    starts = read_log(path).starts
    _flip(path, starts[2] + 200)  # inside record 3's vector block; records 4 and 5 are whole
    before = path.read_bytes()
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert report.failed and report.records_replayed == 0
    assert f"bytes {starts[2]}-{starts[3]}" in report.error  # exactly the damaged frame
    assert "seq 21-30" in report.error and "2 whole records follow it (seq 31-50)" in report.error
    with pytest.raises(FailedPrecondition) as caught:
        store.bank("b")
    assert "memnet repair b" in str(caught.value)
    store.close()
    assert path.read_bytes() == before  # every byte kept


def test_a_garbled_last_record_of_a_killed_process_is_a_torn_tail(tmp_path: Path) -> None:
    path = _fill(tmp_path, 5)
    starts = read_log(path).starts
    size = path.stat().st_size
    _flip(path, starts[4] + 200)
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert "checksum" in report.reason
    assert report.bytes_cut == size - starts[4]
    assert report.records_replayed == 4
    assert store.bank("b").count() == 40
    store.close()


def test_a_log_cut_below_its_fsynced_size_quarantines_the_bank(tmp_path: Path) -> None:
    path = _fill(tmp_path, 5, killed=False)  # a clean close noted the log's whole size
    starts = read_log(path).starts
    with open(path, "r+b") as f:
        f.truncate(starts[4] + 10)
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert report.failed and "fsynced" in report.error and "seq 41 and after" in report.error
    store.close()
    assert path.stat().st_size == starts[4] + 10


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_a_deleted_or_emptied_log_quarantines_the_bank(tmp_path: Path, damage: str) -> None:
    path = _fill(tmp_path, 10)  # after a kill: 100 acknowledged memories only in the log
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"")
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert report.failed
    assert ("is missing" if damage == "deleted" else "is 0 bytes") in report.error
    store.close()


def test_torn_header_and_garbage_tail(tmp_path: Path) -> None:
    path = _fill(tmp_path, 2)
    with open(path, "ab") as f:
        f.write(os.urandom(3))  # a torn frame header
    store = open_store(tmp_path, snapshot_on_close=False)
    assert store.recovery_reports()["b"].bytes_cut == 3
    assert store.bank("b").count() == 20
    store.close()
    (tmp_path / "banks" / "b" / STATE_FILE).unlink()  # a bank from before log-state.json
    path.write_bytes(MAGIC[:5])  # even the file header is torn: nothing to replay, no crash
    store = open_store(tmp_path)
    assert store.recovery_reports()["b"].bytes_cut == 5
    assert store.bank("b").count() == 0
    store.close()
    path.write_bytes(MAGIC[:5])  # the same, with log-state.json saying the header was fsynced
    store = open_store(tmp_path)
    assert store.recovery_reports()["b"].failed
    store.close()


def test_snapshot_truncates_log_and_reopen_replays_only_the_rest(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(0), ids=[f"a{i}" for i in range(10)]))
    bank_dir = tmp_path / "banks" / "b"
    old_log = log_files(bank_dir)[0][1]
    saved = tmp_path / "old.log"
    shutil.copy(old_log, saved)
    bank.snapshot()
    logs = log_files(bank_dir)
    assert [s for s, _ in logs] == [10] and logs[0][1].stat().st_size == len(MAGIC)
    assert not old_log.exists()
    bank.write(batch(_keys(1), ids=[f"c{i}" for i in range(10)]))
    bank.delete(["a0"])
    store.close()
    shutil.copy(saved, old_log)  # as if we crashed between the snapshot rename and the log rotation
    (bank_dir / "tmp-snapshot-00000000000000000099").mkdir()  # an unfinished snapshot
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert report.records_replayed == 2 and report.bytes_cut == 0  # the old log's record is skipped
    assert store.bank("b").count() == 19
    assert not (bank_dir / "tmp-snapshot-00000000000000000099").exists()
    store.close()


def test_unreadable_index_file_is_rebuilt(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(0), ids=[f"a{i}" for i in range(10)]))
    store.close()
    (snap,) = (tmp_path / "banks" / "b").glob("snapshot-*")
    index_file = snap / "index.faiss"
    index_file.write_bytes(b"\0" * index_file.stat().st_size)
    store = MemoryStore(tmp_path)
    assert store.recovery_reports()["b"].index_rebuilt
    res = store.bank("b").search(_keys(0)[:3], 1)
    assert res.valid.all()
    store.close()


def test_failed_fsync_is_not_acknowledged_and_not_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(0), ids=[f"a{i}" for i in range(10)]))
    assert bank.files.wal is not None
    size = bank.files.wal.path.stat().st_size

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        bank.write(batch(_keys(1), ids=[f"b{i}" for i in range(10)]))
    monkeypatch.undo()
    assert bank.files.wal.path.stat().st_size == size  # the unacknowledged frame is gone
    assert bank.count() == 10 and bank.get(["b0"]) == [None] and bank.last_seq == 10
    store.close()
    store = open_store(tmp_path)
    assert store.bank("b").count() == 10 and store.recovery_reports()["b"].bytes_cut == 0
    store.close()
