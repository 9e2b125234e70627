"""Concurrent readers with a writer (on every backend); lock scope; independence of banks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from store_testlib import Backend, batch, make_bank_config, open_store

from memnet.store import IndexKind, IndexSpec, MemoryStore, Metric
from memnet.store.records import Record

D = 16


def _key(n: int) -> np.ndarray:
    """The key of memory n<n>, a pure function of n so readers can check what they read."""
    return np.random.default_rng(n).standard_normal(D).astype(np.float32)


def _run_for(seconds: float, fn: object, errors: list[BaseException]) -> threading.Thread:
    def loop() -> None:
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                fn()  # type: ignore[operator]
        except BaseException as err:
            errors.append(err)

    t = threading.Thread(target=loop)
    t.start()
    return t


def test_readers_see_consistent_results_while_a_writer_runs(backend: Backend) -> None:
    store = backend.open()
    bank = store.create_bank(
        make_bank_config(
            key_dim=D, metric=Metric.L2, index=IndexSpec(kind=IndexKind.HNSW, hnsw_m=8)
        )
    )
    bank.write(batch(np.stack([_key(n) for n in range(500)]), ids=[f"n{n}" for n in range(500)]))
    errors: list[BaseException] = []
    counter = iter(range(500, 10**6))
    searches = [0]

    def write_then_read_own() -> None:
        ns = [next(counter) for _ in range(20)]
        keys = np.stack([_key(n) for n in ns])
        bank.write(batch(keys, ids=[f"n{n}" for n in ns]))
        bank.delete([f"n{ns[0] - 300}"])
        # A search after the write returned sees it (a wide beam: HNSW32 with M=8 can
        # miss an exact match at the default ef_search on an unlucky graph).
        res = bank.search(keys[-1:], 1, ef_search=1024)
        assert res.ids[0][0] == f"n{ns[-1]}"

    def search() -> None:
        q = np.random.default_rng(searches[0]).standard_normal((4, D)).astype(np.float32)
        searches[0] += 1
        res = bank.search(q, 8, with_vectors=True)
        assert res.keys is not None
        for b in range(4):
            assert res.valid[b].all() and len(set(res.ids[b])) == 8
            assert np.all(np.diff(res.scores[b]) <= 0)
            for j, mid in enumerate(res.ids[b]):  # the vector belongs to the id: no torn reads
                np.testing.assert_array_equal(res.keys[b, j], _key(int(mid[1:])))
            assert np.all(res.recency[b] >= 0)

    seconds = 1.5 if backend.faiss else 5.0  # Milvus Lite searches in Python: ~10/s here
    threads = [_run_for(seconds, write_then_read_own, errors)]
    threads += [_run_for(seconds, search, errors) for _ in range(3)]
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert searches[0] > 10
    store.close()


def test_index_lock_blocks_only_its_own_bank(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    a = store.create_bank(make_bank_config("a", key_dim=D))
    b = store.create_bank(make_bank_config("b", key_dim=D))
    for bank in (a, b):
        bank.write(batch(np.stack([_key(n) for n in range(50)])))
    q = _key(1)[None, :]
    done: dict[str, float] = {}

    def timed(name: str, bank_: object) -> threading.Thread:
        def go() -> None:
            bank_.search(q, 3)  # type: ignore[attr-defined]
            done[name] = time.monotonic()

        t = threading.Thread(target=go)
        t.start()
        return t

    with a._rw.write():  # what a write holds while it touches a's index and arrays
        tb = timed("b", b)
        tb.join(timeout=5)
        assert "b" in done, "a write on bank a must not block searches of bank b"
        ta = timed("a", a)
        time.sleep(0.3)
        assert "a" not in done, "a search of bank a must wait for a's index update"
        released = time.monotonic()
    ta.join(timeout=5)
    assert done["a"] >= released
    store.close()


def test_log_fsync_happens_outside_the_exclusive_section(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D))
    bank.write(batch(np.stack([_key(n) for n in range(50)])))
    assert bank.files.wal is not None
    real_append = bank.files.wal.append
    in_append = threading.Event()

    def slow_append(record: Record) -> None:
        in_append.set()
        time.sleep(1.0)  # a slow disk
        real_append(record)

    bank.files.wal.append = slow_append  # type: ignore[method-assign]
    writer = threading.Thread(target=lambda: bank.write(batch(_key(99)[None, :], ids=["late"])))
    writer.start()
    assert in_append.wait(5)
    t0 = time.monotonic()
    res = bank.search(_key(3)[None, :], 2)
    assert time.monotonic() - t0 < 0.5, "searches must run while the log is being synced"
    assert "late" not in res.ids[0]  # not visible before it is durable
    writer.join(timeout=10)
    assert bank.get(["late"])[0] is not None
    store.close()
