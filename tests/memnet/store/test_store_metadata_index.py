"""Metadata-filtered search (FAISS: through the inverted index) against a brute-force scan,
on every backend."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from store_testlib import Backend, make_bank_config

from memnet.store import MemoryBatch
from memnet.store.metadata_index import MetadataIndex, bucket_of, json_equal

D = 4
VALUES: list[Any] = [0, 1, 1.0, 2, True, False, None, "a", "b", [1, 2], {"x": 1}, 10**400]
# Milvus stores 64-bit JSON integers, and filters only on scalars other than null.
MILVUS_VALUES: list[Any] = [v for v in VALUES if v != 10**400]
MILVUS_FILTER_VALUES: list[Any] = [0, 1, 1.0, 2, True, False, "a", "b"]


def _matches(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    missing = object()
    return all(json_equal(meta.get(k, missing), v) for k, v in flt.items())


def test_json_equal_values_share_a_bucket() -> None:
    for a in VALUES:
        for b in VALUES:
            if json_equal(a, b):
                assert bucket_of(a) == bucket_of(b), (a, b)
    assert bucket_of(True) != bucket_of(1) and bucket_of(1) == bucket_of(1.0)


def test_index_lookups_track_adds_and_removes() -> None:
    metadata = [{"g": i % 3, "s": "x" if i % 2 else "y"} for i in range(30)]
    index = MetadataIndex.build(range(30), metadata)
    assert index.candidates({"g": 1, "s": "x"}) == {i for i in range(30) if i % 6 == 1}
    index.remove(1, metadata[1])
    assert 1 not in index.candidates({"g": 1})
    index.add(31, {"g": 1.0})
    assert 31 in index.candidates({"g": 1})
    assert index.candidates({"nope": 1}) == set()


def test_filtered_searches_match_a_scan_through_writes_deletes_compaction_and_reopen(
    backend: Backend,
) -> None:
    rng = random.Random(7)
    values = VALUES if backend.faiss else MILVUS_VALUES
    filter_values = VALUES if backend.faiss else MILVUS_FILTER_VALUES
    steps = 40 if backend.faiss else 15  # Milvus Lite scans in Python
    store = backend.open(compact_min_dead=50, compact_dead_fraction=0.3)
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    live: dict[str, dict[str, Any]] = {}
    tables = set()  # SlotTable objects seen: a compaction or a reopen makes a new one

    def random_metadata() -> dict[str, Any]:
        keys = rng.sample(["g", "h", "k"], rng.randint(0, 3))
        return {k: rng.choice(values) for k in keys}

    def check() -> None:
        q = np.ones((1, D), np.float32)
        for _ in range(12):
            flt = {
                k: rng.choice(filter_values) for k in rng.sample(["g", "h", "k"], rng.randint(1, 2))
            }
            expected = {mid for mid, meta in live.items() if _matches(meta, flt)}
            res = bank.search(q, 1000, metadata_filter=flt)
            assert {i for i in res.ids[0] if i} == expected, flt
            if not backend.faiss:
                continue
            table = bank.state.table
            index = table._metadata_index
            assert index is not None
            live_slots = set(table.live_slots().tolist())
            assert index.candidates(flt) <= live_slots  # deletes leave no stale entries

    for step in range(steps):
        n = rng.randint(1, 25)
        ids = [f"m{rng.randrange(400)}" for _ in range(n)]
        ids = list(dict.fromkeys(ids))  # unique within a batch
        metas = [random_metadata() for _ in ids]
        keys = np.random.default_rng(step).standard_normal((len(ids), D)).astype(np.float32)
        bank.write(MemoryBatch(keys=keys, values=keys, ids=list(ids), metadata=metas))
        live.update(zip(ids, metas, strict=True))
        gone = [mid for mid in rng.sample(sorted(live), min(len(live), rng.randint(0, 10)))]
        if gone:
            bank.delete(gone)
            for mid in gone:
                del live[mid]
        if backend.faiss:
            tables.add(id(bank.state.table))
        if step % 5 == 4:
            check()  # the first check builds the index; later writes keep it up to date
        if step == steps * 5 // 8:
            store.close()
            store = backend.open(compact_min_dead=50, compact_dead_fraction=0.3)
            bank = store.bank("b")
    check()
    if backend.faiss:
        assert len(tables) >= 3  # the first table, the reopened one, and at least one compaction
    store.close()
