"""Snapshot checksums: a flipped bit in any snapshot file is never served; the formats
written before checksums (snapshot manifests with sizes only, logs of frame format 1)
still open."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from store_testlib import make_bank_config, open_store

from memnet.errors import FailedPrecondition
from memnet.store import MemoryBatch, Metric
from memnet.store import snapshot as snap
from memnet.store.frames import MAGIC_V1, scan
from memnet.store.logstate import STATE_FILE
from memnet.store.records import WriteRecord, encode
from memnet.store.repair import repair_bank
from memnet.store.wal import log_files

D = 8
N = 40


def _keys(n: int = N, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def _ids(n: int = N, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _snapshotted(data_dir: Path) -> Path:
    """A bank of N memories (texts, metadata, sources) closed with a snapshot."""
    with open_store(data_dir) as store:
        bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D, metric=Metric.L2))
        bank.write(
            MemoryBatch(
                keys=_keys(),
                values=_keys(seed=8),
                ids=_ids(),  # type: ignore[arg-type]
                texts=[f"text {i}" for i in range(N)],
                metadata=[{"i": i} for i in range(N)],
                source_vectors=_keys(seed=9)[:, :3].copy(),
            )
        )
    (directory,) = (data_dir / "banks" / "b").glob("snapshot-*")
    return directory


def _flip(path: Path, offset_from_end: int = 5) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x04
    path.write_bytes(bytes(data))


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


FILES = [
    "keys.npy",
    "values.npy",
    "seqs.npy",
    "written_ns.npy",
    "alive.npy",
    "sources.npy",
    "source_dims.npy",
    "records.json",
]


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_bit_in_a_snapshot_file_quarantines_the_bank(tmp_path: Path, name: str) -> None:
    snapshot = _snapshotted(tmp_path)
    _flip(snapshot / name)
    before = _tree(snapshot.parent)
    with open_store(tmp_path) as store:
        report = store.recovery_reports()["b"]
        assert report.failed
        assert name in report.error and "checksum mismatch" in report.error
        with pytest.raises(FailedPrecondition):
            store.bank("b")
    assert _tree(snapshot.parent) == before  # never served, never rewritten


def test_a_flipped_bit_in_the_index_file_rebuilds_the_index_from_the_keys(tmp_path: Path) -> None:
    snapshot = _snapshotted(tmp_path)
    _flip(snapshot / snap.INDEX_FILE)
    with open_store(tmp_path) as store:
        report = store.recovery_reports()["b"]
        assert report.index_rebuilt and not report.failed
        result = store.bank("b").search(_keys()[:5], 1)
        assert [row[0] for row in result.ids] == _ids(5)


def test_a_bad_snapshot_is_rebuilt_from_an_older_base_and_a_complete_log(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D, metric=Metric.L2))
    bank.write(MemoryBatch(keys=_keys(10), values=_keys(10), ids=_ids(10, "a")))  # type: ignore[arg-type]
    bank_dir = tmp_path / "banks" / "b"
    ((_, first_log),) = log_files(bank_dir)
    kept = tmp_path / "first.log"
    shutil.copy(first_log, kept)
    bank.snapshot()
    bank.write(MemoryBatch(keys=_keys(10, 1), values=_keys(10, 1), ids=_ids(10, "c")))  # type: ignore[arg-type]
    store.close()
    (snapshot,) = bank_dir.glob("snapshot-*")
    _flip(snapshot / "keys.npy")
    shutil.copy(kept, first_log)  # the log the snapshot replaced is still there
    with open_store(tmp_path) as store:
        report = store.recovery_reports()["b"]
        assert not report.failed and "keys.npy" in report.reason
        assert report.records_replayed == 2
        bank = store.bank("b")
        got = bank.get(_ids(10, "a") + _ids(10, "c"))
        expected = np.concatenate([_keys(10), _keys(10, 1)])
        np.testing.assert_array_equal(np.stack([r.key for r in got if r is not None]), expected)
    assert not snapshot.exists()  # the close's snapshot replaced it
    with open_store(tmp_path) as store:
        assert store.bank("b").count() == 20 and not store.recovery_reports()["b"].reason


def test_a_snapshot_of_the_sizes_only_format_still_opens(tmp_path: Path) -> None:
    snapshot = _snapshotted(tmp_path)
    manifest = json.loads((snapshot / snap.MANIFEST_FILE).read_text())
    old = {k: manifest[k] for k in ("seq", "n_slots", "trained", "sizes")} | {"format": 1}
    (snapshot / snap.MANIFEST_FILE).write_text(json.dumps(old))
    with open_store(tmp_path) as store:
        bank = store.bank("b")
        assert bank.count() == N and not store.recovery_reports()["b"].failed
        record = bank.get(["m3"])[0]
        assert record is not None and record.text == "text 3" and record.metadata == {"i": 3}


def test_a_log_of_frame_format_1_still_replays_and_new_records_go_to_a_new_log(
    tmp_path: Path,
) -> None:
    with open_store(tmp_path, snapshot_on_close=False) as store:
        store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    bank_dir = tmp_path / "banks" / "b"
    ((_, log),) = log_files(bank_dir)
    (bank_dir / STATE_FILE).unlink()  # a bank written before log-state.json existed
    frames = [MAGIC_V1]
    for j in range(3):
        record = WriteRecord(
            j * 5 + 1, 0, _ids(5, f"v{j}-"), _keys(5, j), _keys(5, j), None, None, None, []
        )
        payload = b"".join(bytes(p) for p in encode(record))
        frames.append(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    log.write_bytes(b"".join(frames))
    with open_store(tmp_path, snapshot_on_close=False) as store:
        bank = store.bank("b")
        assert bank.count() == 15 and store.recovery_reports()["b"].records_replayed == 3
        bank.write(MemoryBatch(keys=_keys(5, 9), values=_keys(5, 9), ids=_ids(5, "new")))  # type: ignore[arg-type]
    logs = log_files(bank_dir)
    assert [s for s, _ in logs] == [0, 15]  # the old log is kept as it is, a new one follows
    assert logs[0][1].read_bytes() == b"".join(frames)
    assert scan(logs[1][1]).version == 2
    with open_store(tmp_path) as store:
        assert store.bank("b").count() == 20


def test_damage_inside_a_format_1_log_is_found_and_repaired_past_it(tmp_path: Path) -> None:
    with open_store(tmp_path, snapshot_on_close=False) as store:
        store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    bank_dir = tmp_path / "banks" / "b"
    ((_, log),) = log_files(bank_dir)
    (bank_dir / STATE_FILE).unlink()
    frames, starts = [MAGIC_V1], []
    for j in range(4):
        record = WriteRecord(
            j * 5 + 1, 0, _ids(5, f"v{j}-"), _keys(5, j), _keys(5, j), None, None, None, []
        )
        payload = b"".join(bytes(p) for p in encode(record))
        starts.append(sum(len(f) for f in frames))
        frames.append(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    data = bytearray(b"".join(frames))
    data[starts[1] + 2] ^= 0x01  # the length field of record 2: a reader cannot step over it
    log.write_bytes(bytes(data))
    with open_store(tmp_path) as store:
        report = store.recovery_reports()["b"]
        assert report.failed and "seq 6-10" in report.error and "(seq 11-20)" in report.error
    repaired = repair_bank(tmp_path, "b")
    assert repaired.records_salvaged == 3 and repaired.memories == 15
    with open_store(tmp_path) as store:
        assert store.bank("b").get(["v1-0", "v2-0"])[1] is not None
