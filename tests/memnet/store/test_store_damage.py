"""Damaged banks on disk: a bad index is rebuilt, a bad bank is quarantined, a re-snapshot
cut short by a crash keeps the bank."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from store_testlib import make_bank_config, open_store

from memnet.errors import AlreadyExists, FailedPrecondition
from memnet.store import MemoryBatch, MemoryStore, Metric
from memnet.store import snapshot as snap

D = 8
N = 40


def _keys(n: int = N) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((n, D)).astype(np.float32)


def _ids(n: int = N) -> list[str]:
    return [f"m{i}" for i in range(n)]


def _bank_with_snapshot(data_dir: Path, name: str = "b") -> Path:
    """A bank of N memories closed with a snapshot; returns the snapshot directory."""
    with open_store(data_dir) as store:
        bank = store.create_bank(make_bank_config(name, key_dim=D, value_dim=D, metric=Metric.L2))
        bank.write(MemoryBatch(keys=_keys(), values=_keys(), ids=_ids()))  # type: ignore[arg-type]
    (directory,) = (data_dir / "banks" / name).glob("snapshot-*")
    return directory


def _tree(directory: Path) -> dict[str, bytes]:
    files = (p for p in directory.rglob("*") if p.is_file())
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


# ---- a missing or short index.faiss is rebuilt from the snapshot's keys -----------------


@pytest.mark.parametrize("damage", ["missing", "truncated", "empty"])
def test_missing_or_short_index_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    index_file = _bank_with_snapshot(tmp_path) / snap.INDEX_FILE
    if damage == "missing":
        index_file.unlink()
    else:
        size = index_file.stat().st_size // 2 if damage == "truncated" else 0
        index_file.write_bytes(index_file.read_bytes()[:size])
    with open_store(tmp_path) as store:
        report = store.recovery_reports()["b"]
        assert report.index_rebuilt and not report.failed
        bank = store.bank("b")
        assert bank.count() == N
        result = bank.search(_keys()[:5], 1)
        assert [row[0] for row in result.ids] == _ids(5)  # L2: every key finds itself


# ---- one bank that cannot be opened is quarantined; the others serve -------------------


def _damage(snapshot: Path, damage: str) -> None:
    if damage == "truncated-snapshot":
        keys_file = snapshot / "keys.npy"
        keys_file.write_bytes(keys_file.read_bytes()[:-64])
    elif damage == "missing-manifest":
        (snapshot / "manifest.json").unlink()
    elif damage == "missing-config":
        (snapshot.parent / "config.json").unlink()
    else:
        (snapshot.parent / "config.json").write_text("{not json")


DAMAGES = ["truncated-snapshot", "missing-manifest", "missing-config", "garbled-config"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_bank_that_cannot_open_is_quarantined(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = _bank_with_snapshot(tmp_path, "bad")
    _bank_with_snapshot(tmp_path, "good")
    _damage(snapshot, damage)
    bad_dir = snapshot.parent
    before = _tree(bad_dir)
    with open_store(tmp_path) as store:
        assert [b.name for b in store.banks()] == ["good"]
        assert store.bank("good").count() == N
        with pytest.raises(FailedPrecondition) as caught:
            store.bank("bad")
        assert caught.value.field == "bank"
        assert "'bad'" in str(caught.value) and "could not be opened" in str(caught.value)
        report = store.recovery_reports()["bad"]
        assert report.failed and report.error
        assert not store.recovery_reports()["good"].failed
        with pytest.raises(AlreadyExists):
            store.create_bank(make_bank_config("bad", key_dim=D, value_dim=D))
    assert any(r.levelname == "ERROR" and "bad" in r.getMessage() for r in caplog.records)
    assert _tree(bad_dir) == before  # quarantined: its files are kept as they were


def test_dropping_a_quarantined_bank_removes_it(tmp_path: Path) -> None:
    _damage(_bank_with_snapshot(tmp_path, "bad"), "missing-manifest")
    with open_store(tmp_path) as store:
        store.drop_bank("bad")
        assert "bad" not in store.recovery_reports()
        assert not (tmp_path / "banks" / "bad").exists()
        bank = store.create_bank(make_bank_config("bad", key_dim=D, value_dim=D))
        assert bank.count() == 0
    with open_store(tmp_path) as store:
        assert [b.name for b in store.banks()] == ["bad"]


# ---- re-snapshotting at one seq never leaves the bank without a snapshot ----------------

_RESNAPSHOT_THEN_DIE = """
import os, sys
from pathlib import Path
import numpy as np
from memnet.store import MemoryBatch, MemoryStore, fs
from memnet.store.types import BankConfig
store = MemoryStore(Path(sys.argv[1]))
bank = store.create_bank(BankConfig(name="b", key_dim=4, value_dim=4))
keys = np.ones((5, 4), np.float32)
bank.write(MemoryBatch(keys=keys, values=keys, ids=[f"m{i}" for i in range(5)]))
bank.snapshot()
die_at, calls = int(sys.argv[2]), []
class DyingAtRename(fs.FileSystem):
    def rename(self, src, dst):
        calls.append(dst)
        if len(calls) == die_at:
            os._exit(9)
        super().rename(src, dst)
with fs.installed(DyingAtRename()):
    bank.snapshot()  # the same seq again
os._exit(0)
"""


@pytest.mark.parametrize("die_at", [1, 2])
def test_a_crash_at_each_rename_of_a_re_snapshot_keeps_the_bank(
    tmp_path: Path, die_at: int
) -> None:
    died = subprocess.run(
        [sys.executable, "-c", _RESNAPSHOT_THEN_DIE, str(tmp_path), str(die_at)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert died.returncode == 9, died.stderr.decode()[-2000:]
    with MemoryStore(tmp_path) as store:
        assert store.bank("b").count() == 5
    bank_dir = tmp_path / "banks" / "b"
    assert [p.name for p in bank_dir.glob("*snapshot-*")] == [f"snapshot-{5:020d}"]


def test_recovery_finishes_or_undoes_an_interrupted_replacement(tmp_path: Path) -> None:
    snapshot = _bank_with_snapshot(tmp_path)
    bank_dir = snapshot.parent
    aside = bank_dir / f"{snap.REPLACED_PREFIX}{snapshot.name}"
    snapshot.rename(aside)  # the old one renamed aside, the new one never arrived
    with open_store(tmp_path) as store:
        assert store.bank("b").count() == N
    assert snapshot.is_dir() and not aside.exists()
    aside.mkdir()  # the new one arrived, the old one was not yet deleted
    with open_store(tmp_path) as store:
        assert store.bank("b").count() == N
    assert snapshot.is_dir() and not aside.exists()


def test_re_snapshot_at_the_same_seq_replaces_it_whole(tmp_path: Path) -> None:
    snapshot = _bank_with_snapshot(tmp_path)
    (snapshot / snap.INDEX_FILE).unlink()
    with open_store(tmp_path) as store:
        assert store.recovery_reports()["b"].index_rebuilt
        store.bank("b").snapshot()  # same seq: writes a whole one in place of the damaged one
        assert (snapshot / snap.INDEX_FILE).is_file()
    with open_store(tmp_path) as store:
        assert not store.recovery_reports()["b"].index_rebuilt
        assert store.bank("b").count() == N
