"""The bank and store API end to end (on every backend), and every StoreSettings flag."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from store_testlib import Backend, batch, clustered, make_bank_config, open_store

from memnet.store import FsyncPolicy, IndexKind, IndexSpec, MemoryBatch, MemoryStore, Metric
from memnet.store import search as search_module
from memnet.store.wal import MAGIC, log_files

D = 16


def _keys(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def test_records_round_trip_through_reopen(backend: Backend) -> None:
    store = backend.open(snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=3, description="d"))
    keys = _keys(3)
    src = _keys(3, 1)[:, :5]
    t0 = time.time_ns()
    r = bank.write(
        MemoryBatch(
            keys=keys,
            values=np.arange(9, dtype=np.float32).reshape(3, 3),
            ids=["a", None, "c"],
            texts=["alpha", None, "γ"],
            source_vectors=src,
            metadata=[{"tag": "x", "n": 1}, {}, {"nested": {"k": [1, 2]}}],
        )
    )
    assert r.ids[0] == "a" and r.ids[2] == "c" and len(r.ids[1]) == 32 and r.seq == 3
    for reopen in (False, True):
        if reopen:
            store.close()
            store = backend.open()
            bank = store.bank("b")
            if backend.faiss:
                assert store.recovery_reports()["b"].records_replayed == 1
        a, gen, c = bank.get(r.ids)
        assert a is not None and gen is not None and c is not None
        assert a.text == "alpha" and gen.text is None and c.text == "γ"
        assert a.metadata == {"tag": "x", "n": 1} and c.metadata == {"nested": {"k": [1, 2]}}
        np.testing.assert_array_equal(a.key, keys[0])
        np.testing.assert_array_equal(c.value, [6, 7, 8])
        assert a.source_vector is not None
        np.testing.assert_array_equal(a.source_vector, src[0])
        assert (a.seq, gen.seq, c.seq) == (1, 2, 3) and a.written_at_ns >= t0
        contents = bank.contents([*r.ids, "unknown"])
        assert set(contents) == {"a", "c"}  # the generated id has neither text nor metadata
        assert contents["a"].text == "alpha" and contents["a"].metadata == {"tag": "x", "n": 1}
        assert contents["c"].text == "γ" and contents["c"].metadata == {"nested": {"k": [1, 2]}}
    assert bank.config.description == "d" and bank.name == "b"
    bank.delete(["a"])
    bank.write(MemoryBatch(keys=keys[:1], values=np.zeros((1, 3), np.float32), ids=["c"]))
    assert bank.contents(["a", "c"]) == {}  # deleted; replaced by a memory without content
    store.close()


def test_list_pages_in_seq_order_and_gather(backend: Backend) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(25), ids=[f"m{i:02d}" for i in range(25)]))
    bank.delete(["m03"])
    bank.write(batch(_keys(1, 5), ids=["m00"]))  # an upsert moves m00 to the end
    seen: list[str] = []
    token: str | None = None
    while True:
        page, token = bank.list(page_size=7, page_token=token)
        seen += [r.id for r in page]
        assert len(page) <= 7
        if token is None:
            break
    expected = [f"m{i:02d}" for i in range(1, 25) if i != 3] + ["m00"]
    assert seen == expected
    keys, values = bank.gather(["m05", "m00"])  # type: ignore[attr-defined]
    assert keys.shape == (2, D) and values.shape == (2, 8)
    np.testing.assert_array_equal(keys[0], _keys(25)[5])
    np.testing.assert_array_equal(keys[1], _keys(1, 5)[0])
    store.close()


def test_recency_counts_from_the_newest_live_memory(backend: Backend) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, metric=Metric.L2))
    keys = _keys(10)
    bank.write(batch(keys, ids=[f"m{i}" for i in range(10)]))
    bank.delete(["m8"])
    res = bank.search(keys, 1)
    rec = {row[0]: int(r[0]) for row, r in zip(res.ids, res.recency, strict=True)}
    # live by seq: m0..m7, m9 -> m9 is 0, m7 is 1, m0 is 8
    assert rec["m9"] == 0 and rec["m7"] == 1 and rec["m0"] == 8
    res = bank.search(keys[:1], 20)  # k beyond the bank: padding
    assert res.valid[0].sum() == 9 and res.ids[0][9:] == [""] * 11
    assert np.all(np.isneginf(res.scores[0, 9:])) and np.all(res.recency[0, 9:] == -1)
    store.close()


@pytest.mark.parametrize("kind", [IndexKind.FLAT, IndexKind.HNSW, IndexKind.IVF])
@pytest.mark.parametrize("exact_max", [search_module.EXACT_SUBSET_MAX, 10])
def test_metadata_filter(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, kind: IndexKind, exact_max: int
) -> None:
    if not backend.faiss and exact_max != search_module.EXACT_SUBSET_MAX:
        pytest.skip("EXACT_SUBSET_MAX chooses between two FAISS search paths")
    monkeypatch.setattr(search_module, "EXACT_SUBSET_MAX", exact_max)  # 10: FAISS + IDSelector path
    rng = np.random.default_rng(2)
    keys = clustered(rng, 1500, D)
    meta = [{"colour": ["red", "blue", "green"][i % 3], "even": i % 2 == 0} for i in range(1500)]
    store = backend.open()
    spec = IndexSpec(kind=kind, nlist=8, nprobe=8)
    bank = store.create_bank(make_bank_config(key_dim=D, metric=Metric.L2, index=spec))
    bank.write(
        MemoryBatch(
            keys=keys,
            values=np.zeros((1500, 8), np.float32),
            ids=[f"m{i}" for i in range(1500)],
            metadata=meta,
        )
    )
    res = bank.search(keys[:30], 5, metadata_filter={"colour": "blue", "even": True})
    for b, row in enumerate(res.ids):
        assert res.valid[b].all()
        for mid in row:
            i = int(mid[1:])
            assert i % 3 == 1 and i % 2 == 0
        if b % 6 == 4:  # the query itself matches the filter: it is the best hit
            assert row[0] == f"m{b}"
    assert bank.search(keys[:2], 5, metadata_filter={"colour": "purple"}).valid.sum() == 0
    assert bank.search(keys[:2], 5, metadata_filter={"even": 1}).valid.sum() == 0  # true is not 1
    store.close()


def test_clear_drop_and_close_idempotent(backend: Backend, tmp_path: Path) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, index=IndexSpec(kind=IndexKind.HNSW)))
    bank.write(batch(_keys(20)))
    bank.clear()  # type: ignore[attr-defined]
    assert bank.count() == 0 and bank.search(_keys(1), 3).valid.sum() == 0
    bank.write(batch(_keys(5), ids=[f"n{i}" for i in range(5)]))
    assert bank.count() == 5 and bank.last_seq == 26
    other = store.create_bank(make_bank_config("other", key_dim=D))
    other.write(batch(_keys(2)))
    store.drop_bank("other")
    if backend.faiss:
        assert not (tmp_path / "banks" / "other").exists()
    assert [b.name for b in store.banks()] == ["b"]
    store.close()
    store.close()
    store = backend.open()
    assert store.bank("b").count() == 5 and [b.name for b in store.banks()] == ["b"]
    store.close()


def test_second_process_is_locked_out(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create_bank(make_bank_config(key_dim=D))
    code = (
        "import sys\nfrom pathlib import Path\nfrom memnet.errors import FailedPrecondition\n"
        "from memnet.store import MemoryStore\n"
        "try:\n    MemoryStore(Path(sys.argv[1]))\n"
        "except FailedPrecondition as e:\n    print('LOCKED', e.field)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.strip() == "LOCKED data_dir", out.stderr
    store.close()
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.strip() == "" and out.returncode == 0, out.stderr


def test_fsync_interval_flusher_syncs_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path, fsync=FsyncPolicy.INTERVAL, fsync_interval_ms=200)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(3)))
    wal = bank.files.wal
    assert wal is not None
    synced_by: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced_by.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    wal._last_sync_s = time.monotonic()  # the next append falls inside the window
    bank.write(batch(_keys(3, 1)))
    assert threading.current_thread().name not in synced_by, "no fsync inside the interval"
    deadline = time.monotonic() + 10
    while "memnet-store-timer" not in synced_by and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "memnet-store-timer" in synced_by, "the flusher thread fsyncs the rest"
    assert not wal._dirty
    store.close()


def test_fsync_none_still_reaches_the_os(tmp_path: Path) -> None:
    store = open_store(tmp_path, fsync=FsyncPolicy.NONE, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(3)))
    assert bank.files.wal is not None and bank.files.wal._dirty  # never fsynced by the write
    path = log_files(tmp_path / "banks" / "b")[0][1]
    assert path.stat().st_size > len(MAGIC)  # but in the file (page cache) already
    store.close()


def test_snapshot_after_log_bytes_rotates_the_log(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshot_after_log_bytes=5_000, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(_keys(10)))  # ~1 KB: no snapshot
    bank_dir = tmp_path / "banks" / "b"
    assert not list(bank_dir.glob("snapshot-*"))
    bank.write(batch(_keys(100, 1)))  # ~10 KB: snapshot + new log
    assert [p.name for p in bank_dir.glob("snapshot-*")] == [f"snapshot-{110:020d}"]
    assert [s for s, _ in log_files(bank_dir)] == [110]
    store.close()
    store = open_store(tmp_path)
    assert store.recovery_reports()["b"].records_replayed == 0 and store.bank("b").count() == 110
    store.close()


def test_snapshot_on_close_flag(tmp_path: Path) -> None:
    for flag, snapshots in ((False, 0), (True, 1)):
        path = tmp_path / str(flag)
        store = open_store(path, snapshot_on_close=flag)
        store.create_bank(make_bank_config(key_dim=D)).write(batch(_keys(4)))
        store.close()
        assert len(list((path / "banks" / "b").glob("snapshot-*"))) == snapshots
        store = MemoryStore(path)
        assert store.bank("b").count() == 4
        assert store.recovery_reports()["b"].records_replayed == 1 - snapshots
        store.close()


def test_compaction_settings_rebuild_flat_arrays(tmp_path: Path) -> None:
    store = open_store(tmp_path, compact_min_dead=50, compact_dead_fraction=0.3)
    bank = store.create_bank(make_bank_config(key_dim=D, metric=Metric.L2))
    keys = _keys(200)
    bank.write(batch(keys, ids=[f"m{i}" for i in range(200)]))
    bank.delete([f"m{i}" for i in range(40)])
    assert bank.state.table.n_slots == 200  # 40 dead: under both thresholds
    bank.delete([f"m{i}" for i in range(40, 70)])
    assert bank.state.table.n_slots == 130 and bank.state.table.n_dead == 0
    res = bank.search(keys[70:80], 1)
    assert [r[0] for r in res.ids] == [f"m{i}" for i in range(70, 80)]
    assert bank.list(page_size=1)[0][0].id == "m70"
    store.close()
