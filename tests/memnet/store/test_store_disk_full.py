"""A full disk (ENOSPC, simulated) is ResourceExhausted naming the disk, leaves nothing
half-written, and never keeps a bank or the store from closing."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_testlib import make_bank_config, open_store

from memnet.errors import ResourceExhausted
from memnet.store import Bank, MemoryBatch, MemoryStore, fs
from memnet.store import recovery as recovery_module
from memnet.store import snapshot as snap

D = 8


def _batch(prefix: str, n: int = 10) -> MemoryBatch:
    keys = np.random.default_rng(len(prefix)).standard_normal((n, D)).astype(np.float32)
    return MemoryBatch(keys=keys, values=keys, ids=[f"{prefix}{i}" for i in range(n)])


def _fail_with(code: int) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


class _FullAtIndexFsync(fs.FileSystem):
    """The disk fills up when a snapshot's index file is fsynced."""

    def __init__(self) -> None:
        self._index_fds: set[int] = set()

    def open(self, path: Path, flags: int, mode: int = 0o644) -> int:
        fd = super().open(path, flags, mode)
        if Path(path).name == snap.INDEX_FILE:
            self._index_fds.add(fd)
        return fd

    def fsync(self, fd: int) -> None:
        if fd in self._index_fds:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().fsync(fd)

    def close(self, fd: int) -> None:
        self._index_fds.discard(fd)
        super().close(fd)


def _bank(store: MemoryStore, name: str = "b") -> Bank:
    bank = store.create_bank(make_bank_config(name, key_dim=D, value_dim=D))
    bank.write(_batch("a"))
    return bank


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_log_append_on_a_full_disk_is_resource_exhausted_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    real_write = os.write

    def half_then_full(fd: int, buffers: list[bytes]) -> int:
        real_write(fd, bytes(buffers[0])[:5])  # a torn frame reaches the file first
        raise OSError(code, os.strerror(code))

    with open_store(tmp_path) as store:
        bank = _bank(store)
        log = bank.files.wal
        assert log is not None
        size = log.path.stat().st_size
        monkeypatch.setattr(os, "writev", half_then_full)
        with pytest.raises(ResourceExhausted) as caught:
            bank.write(_batch("refused"))
        assert caught.value.field == "disk" and "disk is full" in str(caught.value)
        assert log.path.stat().st_size == size  # cut back to the last whole record
        assert bank.count() == 10
        monkeypatch.undo()
        bank.write(_batch("later", 3))
    with open_store(tmp_path) as store:
        assert store.bank("b").count() == 13


def test_other_os_errors_of_the_log_stay_os_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path) as store:
        bank = _bank(store)
        monkeypatch.setattr(os, "writev", _fail_with(errno.EIO))
        with pytest.raises(OSError) as caught:
            bank.write(_batch("refused"))
        assert caught.value.errno == errno.EIO
        monkeypatch.undo()


@pytest.mark.parametrize("where", ["config", "log"])
def test_creating_a_bank_on_a_full_disk_is_resource_exhausted_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    with open_store(tmp_path) as store:
        if where == "config":
            monkeypatch.setattr(os, "fsync", _fail_with(errno.ENOSPC))
        else:
            monkeypatch.setattr(recovery_module, "WriteAheadLog", _fail_with(errno.ENOSPC))
        with pytest.raises(ResourceExhausted) as caught:
            store.create_bank(make_bank_config("b", key_dim=D, value_dim=D))
        assert caught.value.field == "disk" and "disk is full" in str(caught.value)
        monkeypatch.undo()
        assert list((tmp_path / "banks").iterdir()) == []
        assert store.banks() == []
        _bank(store)  # the name is free again


def test_a_snapshot_on_a_full_disk_is_resource_exhausted_and_removes_its_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path) as store:
        bank = _bank(store)
        bank.snapshot()
        bank.write(_batch("more", 4))
        with fs.installed(_FullAtIndexFsync()), pytest.raises(ResourceExhausted) as caught:
            bank.snapshot()
        assert caught.value.field == "disk"
        bank_dir = tmp_path / "banks" / "b"
        assert not list(bank_dir.glob("tmp-*"))
        assert [p.name for p in bank_dir.glob("snapshot-*")] == [f"snapshot-{10:020d}"]
        bank.write(_batch("after", 2))
    with open_store(tmp_path) as store:
        assert store.bank("b").count() == 16


def test_closing_on_a_full_disk_closes_the_log_and_releases_every_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(tmp_path)
    _bank(store, "b1")
    _bank(store, "b2")
    with fs.installed(_FullAtIndexFsync()):
        store.close()  # both snapshots fail; neither stops the close
    assert sum("snapshot on close failed" in r.getMessage() for r in caplog.records) == 2
    for name in ("b1", "b2"):
        assert not list((tmp_path / "banks" / name).glob("tmp-*"))
    with open_store(tmp_path) as reopened:  # every lock was released; the logs hold the data
        assert [reopened.bank(n).count() for n in ("b1", "b2")] == [10, 10]


def test_store_close_goes_on_when_one_bank_fails_to_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    first, second = _bank(store, "b1"), _bank(store, "b2")
    real_close = Bank.close

    def close(self: Bank, **kwargs: bool) -> None:
        if self is first:
            raise RuntimeError("simulated failure")
        real_close(self, **kwargs)

    monkeypatch.setattr(Bank, "close", close)
    store.close()
    monkeypatch.undo()
    assert second._closed and not first._closed
    first.close()
    with open_store(tmp_path) as reopened:  # the store lock was released
        assert [b.name for b in reopened.banks()] == ["b1", "b2"]
